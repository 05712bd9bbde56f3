/**
 * Who is calling: a producer (API key, `Authorization: Bearer <key>`) or a user (HS256 JWT whose
 * `sub` is the user id, with `exp`). Keys are compared in constant time; tokens with any other
 * algorithm (including `none`), without `exp`, expired, badly signed, or whose `exp` is further
 * ahead than `maxTokenTtl` seconds from now (HERALD_MAX_TOKEN_TTL: a leaked token cannot live for
 * years) are refused alike.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { HeraldError } from '../core/errors.ts';

/**
 * `keyId`: which API key, as a digest (SHA-256, base64url) — safe to key rate limits and logs by;
 * the key itself never leaves this module.
 */
export type Caller = { kind: 'producer'; keyId: string } | { kind: 'user'; userId: string };

const digest = (s: string) => createHash('sha256').update(s).digest();

export class Auth {
  private readonly keyDigests: Buffer[];
  private readonly keyIds: string[];
  private readonly jwtKey: Uint8Array;

  /** `maxTokenTtl`: seconds (HERALD_MAX_TOKEN_TTL); tokens may not be issued or accepted for longer. */
  constructor(
    apiKeys: readonly string[],
    jwtSecret: string,
    readonly maxTokenTtl: number,
  ) {
    this.keyDigests = apiKeys.map(digest);
    this.keyIds = this.keyDigests.map((d) => d.toString('base64url'));
    this.jwtKey = new TextEncoder().encode(jwtSecret);
  }

  isApiKey(candidate: string): boolean {
    return this.keyIndex(candidate) >= 0;
  }

  /** Which configured key `candidate` is (-1: none); every key is compared, in constant time. */
  private keyIndex(candidate: string): number {
    const d = digest(candidate);
    let found = -1;
    for (let i = 0; i < this.keyDigests.length; i++) {
      if (timingSafeEqual(this.keyDigests[i] as Buffer, d)) found = i;
    }
    return found;
  }

  /** Resolves the caller from an Authorization header; `allowUser` admits user tokens too. */
  async caller(authorization: string | undefined, allowUser: boolean): Promise<Caller> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new HeraldError('HERALD_ERR_UNAUTHORIZED', 'missing Authorization: Bearer <api key>');
    const credential = m[1] as string;
    const key = this.keyIndex(credential);
    if (key >= 0) return { kind: 'producer', keyId: this.keyIds[key] as string };
    if (allowUser && credential.split('.').length === 3)
      return { kind: 'user', userId: await this.verifyUserToken(credential) };
    throw new HeraldError('HERALD_ERR_UNAUTHORIZED', allowUser ? 'invalid API key or user token' : 'invalid API key');
  }

  /** The user id of a valid token; HERALD_ERR_UNAUTHORIZED otherwise. */
  async verifyUserToken(token: string): Promise<string> {
    return (await this.userTokenClaims(token)).userId;
  }

  /** The user id and expiry (epoch seconds) of a valid token; HERALD_ERR_UNAUTHORIZED otherwise. */
  async userTokenClaims(token: string): Promise<{ userId: string; exp: number }> {
    try {
      const { payload } = await jwtVerify(token, this.jwtKey, {
        algorithms: ['HS256'],
        requiredClaims: ['sub', 'exp'],
      });
      if (typeof payload.sub !== 'string' || !payload.sub) throw new Error('sub must be a user id');
      const exp = payload.exp as number;
      if (exp > Date.now() / 1000 + this.maxTokenTtl) throw new TokenTooLong();
      return { userId: payload.sub, exp };
    } catch (e) {
      const why =
        e instanceof joseErrors.JWTExpired
          ? 'user token expired'
          : e instanceof TokenTooLong
            ? 'user token lives longer than HERALD_MAX_TOKEN_TTL allows'
            : 'invalid user token';
      throw new HeraldError('HERALD_ERR_UNAUTHORIZED', why, { cause: e });
    }
  }

  async issueUserToken(userId: string, ttlSeconds: number): Promise<{ token: string; expiresAt: Date }> {
    if (ttlSeconds > this.maxTokenTtl)
      throw new RangeError(`ttlSeconds ${ttlSeconds} > maxTokenTtl ${this.maxTokenTtl}`);
    const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(this.jwtKey);
    return { token, expiresAt: new Date(exp * 1000) };
  }
}

class TokenTooLong extends Error {}

/** A user may act on its own data only. */
export function assertMayActOn(caller: Caller, userId: string): void {
  if (caller.kind === 'user' && caller.userId !== userId) {
    throw new HeraldError('HERALD_ERR_FORBIDDEN', 'this user token may only act on its own user');
  }
}
