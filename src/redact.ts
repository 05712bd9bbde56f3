/**
 * Redaction of secrets in text meant for people: configuration errors, the start-up log and banner,
 * and the reasons Herald cannot start all go through `redact`.
 *
 * Guarantees, for the text it is given:
 * - every value listed in `secrets` (4 characters or more) is replaced by `***` wherever it appears;
 * - in every URL (`scheme://…`) the password of the user info is replaced (`postgres://me:***@db/x`),
 *   and so is the value of every query parameter whose name suggests a credential: any name that
 *   contains `pass`, `pwd`, `secret`, `token`, `key`, `auth`, `credential` or `signature`
 *   (`?password=`, `sslpassword`, `sslkey`, `api_key`, …), in any case;
 * - with `asUrl` (the text is the value of a URL setting, perhaps mistyped: `postgres:/me:pw@db`,
 *   `me:pw@db:5432/x`), everything before the last `@` is replaced when the text has no `://`,
 *   and credential query parameters are replaced as above.
 * User names, hosts, ports, paths and other parameters are kept: they are what an operator needs to
 * see which server was meant. Where the shape is ambiguous (an `@` in a password), more is hidden,
 * never less.
 */

export const MASK = '***';

/** Settings whose whole value is a secret. */
export function isSecretSetting(name: string): boolean {
  return /(SECRET|API_KEYS|TOKEN|PASSWORD|PRIVATE_KEY)$/.test(name);
}

/** Settings whose value is a URL (which may carry a password). */
export function isUrlSetting(name: string): boolean {
  return name.endsWith('_URL');
}

const CREDENTIAL_PARAM = /pass|pwd|secret|token|key|auth|credential|signature/i;
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*/gi;
/** Secrets shorter than this are not searched for in text (they would mangle it and reveal little). */
const MIN_SECRET_LENGTH = 4;

export interface RedactOptions {
  /** Values to hide wherever they appear (e.g. `secretsIn(process.env)`). */
  secrets?: readonly string[];
  /** The whole text is the value of a URL setting, perhaps not shaped like a URL. */
  asUrl?: boolean;
}

export function redact(text: string, options: RedactOptions = {}): string {
  let out = text;
  const secrets = [...new Set(options.secrets ?? [])]
    .filter((s) => s.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  for (const s of secrets) out = out.split(s).join(MASK);
  if (options.asUrl && !out.includes('://')) {
    const at = out.lastIndexOf('@');
    if (at >= 0) out = `${MASK}${out.slice(at)}`;
    return maskQuery(out);
  }
  return out.replace(URL_IN_TEXT, redactUrl);
}

/**
 * The secret values among settings: each secret setting's value (and each comma-separated part of
 * it), and the password and credential parameters of each URL setting.
 */
export function secretsIn(env: Readonly<Record<string, string | undefined>>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue;
    if (isSecretSetting(name)) {
      out.push(value, ...value.split(',').map((p) => p.trim()));
    } else if (isUrlSetting(name)) {
      out.push(...urlCredentials(value));
    }
  }
  return out.filter((s) => s.length >= MIN_SECRET_LENGTH);
}

function urlCredentials(value: string): string[] {
  const out: string[] = [];
  try {
    const u = new URL(value);
    if (u.password) out.push(u.password, safeDecode(u.password));
    for (const [k, v] of u.searchParams) if (CREDENTIAL_PARAM.test(k) && v) out.push(v);
  } catch {
    // Not a URL: redact() with asUrl still hides its user info.
  }
  return out;
}

/** One `scheme://…` token. */
function redactUrl(token: string): string {
  const sep = token.indexOf('://') + 3;
  const scheme = token.slice(0, sep);
  let rest = token.slice(sep);
  const at = userInfoEnd(rest);
  if (at >= 0) {
    const info = rest.slice(0, at);
    const colon = info.indexOf(':');
    // No colon: a user name alone, which is kept.
    if (colon >= 0) rest = `${info.slice(0, colon)}:${MASK}${rest.slice(at)}`;
  }
  return scheme + maskQuery(rest);
}

/**
 * Where the user info ends (its `@`), or -1. The last `@` before the query; if the only `@`s come
 * after a `?` (a password holding `?`, or a query value holding `@`), the first `@` when nothing
 * before it looks like a path.
 */
function userInfoEnd(rest: string): number {
  const q = rest.search(/[?#]/);
  const head = q === -1 ? rest : rest.slice(0, q);
  const at = head.lastIndexOf('@');
  if (at >= 0) return at;
  const first = rest.indexOf('@');
  return first >= 0 && !rest.slice(0, first).includes('/') ? first : -1;
}

function maskQuery(s: string): string {
  const q = s.indexOf('?');
  if (q < 0) return s;
  const hash = s.indexOf('#', q);
  const end = hash < 0 ? s.length : hash;
  const query = s
    .slice(q + 1, end)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      const key = pair.slice(0, eq);
      return CREDENTIAL_PARAM.test(safeDecode(key)) ? `${key}=${MASK}` : pair;
    })
    .join('&');
  return `${s.slice(0, q + 1)}${query}${s.slice(end)}`;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
