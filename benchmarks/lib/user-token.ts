/**
 * User tokens for the real-time benchmarks: HS256 JWTs (`sub`, `iat`, `exp`) signed with
 * node:crypto, the way a producer signs them with HERALD_JWT_SECRET (docs/realtime.md). Signing
 * 10,000 takes a few tens of milliseconds, so load generators sign their own.
 */
import { createHmac } from 'node:crypto';

/** The HERALD_JWT_SECRET the real-time scenarios give Herald, so their clients can sign tokens. */
export const BENCH_JWT_SECRET = 'bench-realtime-jwt-secret-0123456789abcdef';

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

export function signUserToken(secret: string, userId: string, ttlSeconds = 3_600): string {
  const now = Math.floor(Date.now() / 1000);
  const payload = Buffer.from(JSON.stringify({ sub: userId, iat: now, exp: now + ttlSeconds })).toString('base64url');
  const signature = createHmac('sha256', secret).update(`${HEADER}.${payload}`).digest('base64url');
  return `${HEADER}.${payload}.${signature}`;
}
