/** For the configuration tests: the message of the ConfigError that `env` gets, or a failure. */
import { expect } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/config-error.ts';

export function configErrorOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error(`expected a configuration error; ${JSON.stringify(Object.keys(env))} was accepted`);
}
