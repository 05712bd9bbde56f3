/** A configuration Herald refuses to start with; its message names the settings and never shows a secret. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
