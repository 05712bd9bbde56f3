/**
 * Producer rate limits at the HTTP edge: `@fastify/rate-limit` writes the draft-spec headers and
 * refuses, the RateLimiter port decides (through the plugin's custom-store interface), so the
 * token-bucket guarantee is the port's: per API key, in any `t` seconds at most `rps × t + burst`
 * requests are served. Why the plugin and not a hand-written hook: docs/adr/0009.
 *
 * Which requests count: those authenticated with an API key, on the routes that take one. The
 * check runs in `onRequest`, after authentication and before the body is read, so a refused
 * request costs no parsing. Every answer to such a request — 2xx, 4xx or the 429 itself — carries
 * `RateLimit-Limit` (the bucket size), `RateLimit-Remaining` and `RateLimit-Reset` (seconds until
 * the bucket is full again; on a 429, until the next request is served, like `Retry-After`).
 * Requests refused by authentication (401), requests with a user token, and routes without
 * authentication (operations, docs) are neither counted nor given headers. Buckets are keyed by the
 * key's digest (Caller.keyId), never the key.
 *
 * Not registered at all when no limit is configured: no hook, no headers, no cost.
 */
import rateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify';
import { HeraldError } from '../core/errors.ts';
import type { RateLimiter } from '../core/ports-channels.ts';
import { errorResponses } from './docs.ts';

export interface RateLimitOptions {
  limiter: RateLimiter;
  /** Requests per second per key (for the 429's message). */
  rps: number;
  /** Bucket size: `RateLimit-Limit`. */
  burst: number;
}

/**
 * Limits every route registered after this call whose `config.auth` admits an API key, and adds
 * the 429 answer to its documented responses.
 */
export async function registerRateLimit(app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  const { limiter, rps, burst } = options;
  await app.register(rateLimit, {
    // Hooks go only on the routes chosen below, not on every route.
    global: false,
    enableDraftSpec: true,
    store: portStore(limiter),
    max: burst,
    // The plugin wants a window; the bucket has none (the store ignores it).
    timeWindow: 1000,
    keyGenerator: (req) => producerKey(req) ?? '',
    allowList: (req) => producerKey(req) === null,
    errorResponseBuilder: (_req, ctx) =>
      new HeraldError(
        'HERALD_ERR_RATE_LIMITED',
        `this API key may send ${rps} requests a second (bursts of ${burst}); retry in ${ctx.after}`,
        { retryAfter: Math.ceil(ctx.ttl / 1000) },
      ),
  });
  const hook = app.rateLimit() as unknown as onRequestHookHandler;
  app.addHook('onRoute', (route) => {
    const auth = route.config?.auth;
    if (auth !== 'producer' && auth !== 'producer-or-user') return;
    const hooks = route.onRequest;
    route.onRequest = hooks === undefined ? [hook] : [hooks, hook].flat();
    // The OpenAPI document says such a route may now answer 429.
    const responses = route.schema?.response as Record<string, unknown> | undefined;
    if (responses && !('429' in responses)) Object.assign(responses, errorResponses(429));
  });
}

/** The digest of the API key that authenticated `req`, or null (no API key: not limited). */
function producerKey(req: FastifyRequest): string | null {
  const caller = req.caller;
  return caller?.kind === 'producer' ? caller.keyId : null;
}

/**
 * The plugin's store interface over the port. The plugin thinks in fixed windows (`current` hits
 * of `max`, `ttl` until the window ends) and derives its answer from them: over the limit when
 * `current > max`, `remaining = max − current`, `Reset` (and `Retry-After`) = `ttl` in seconds.
 * The port's decision is translated so that the plugin answers exactly what the bucket decided.
 */
function portStore(limiter: RateLimiter): FastifyRateLimitStoreCtor {
  return class PortStore implements FastifyRateLimitStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      _window: number,
      max: number,
    ): void {
      limiter.take(key).then(
        (d) =>
          callback(
            null,
            d.allowed
              ? { current: max - d.remaining, ttl: d.resetSeconds * 1000 }
              : { current: max + 1, ttl: d.retryAfterSeconds * 1000 },
          ),
        (e: Error) => callback(e),
      );
    }

    /** Per-route limits (`config.rateLimit` objects) would be silently ignored by the bucket: refused. */
    child(): FastifyRateLimitStore {
      throw new Error('per-route rate limits are not supported: one bucket per API key');
    }
  };
}
