/**
 * The user token the client holds: a fixed `token`, a `getToken()` to fetch fresh ones, or both.
 * Concurrent refreshes share one `getToken()` call. The token is read (never verified: that is the
 * server's job) for its `sub` and `exp`, so an expired token is replaced before it is used.
 */

export interface TokenClaims {
  sub?: string;
  /** Seconds since the epoch. */
  exp?: number;
}

/** The payload of a JWT, or null if `token` is not one. */
export function claimsOf(token: string): TokenClaims | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const json: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    if (!json || typeof json !== 'object') return null;
    const { sub, exp } = json as Record<string, unknown>;
    return {
      ...(typeof sub === 'string' ? { sub } : {}),
      ...(typeof exp === 'number' ? { exp } : {}),
    };
  } catch {
    return null;
  }
}

export class TokenSource {
  private current: string | null;
  private refreshing: Promise<string> | null = null;

  constructor(
    token: string | undefined,
    private readonly getToken: (() => Promise<string>) | undefined,
  ) {
    if (token === undefined && getToken === undefined) throw new TypeError('HeraldClient needs `token` or `getToken`');
    this.current = token ?? null;
  }

  get canRefresh(): boolean {
    return this.getToken !== undefined;
  }

  /** The token last obtained, if any. */
  peek(): string | null {
    return this.current;
  }

  /** A token to use now: the current one unless there is none or it expires within `marginMs` (and can be replaced). */
  async get(marginMs = 5_000): Promise<string> {
    if (this.current !== null && !(this.canRefresh && this.expiresWithin(this.current, marginMs))) return this.current;
    return this.refresh();
  }

  /** A new token from `getToken()`; the current one when there is no `getToken`. */
  refresh(): Promise<string> {
    const getToken = this.getToken;
    if (!getToken) return Promise.resolve(this.current as string);
    this.refreshing ??= (async () => {
      try {
        const token = await getToken();
        if (typeof token !== 'string' || !token) throw new TypeError('getToken() must resolve to a non-empty string');
        this.current = token;
        return token;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** The `sub` of the current token, if it is a readable JWT. */
  subject(): string | null {
    return this.current === null ? null : (claimsOf(this.current)?.sub ?? null);
  }

  private expiresWithin(token: string, marginMs: number): boolean {
    const exp = claimsOf(token)?.exp;
    return exp !== undefined && exp * 1000 - Date.now() <= marginMs;
  }
}
