/** The ports of sending (the others are in ports.ts): channel providers and rate limiters. Adapters: src/channels, src/ratelimit. */

import type { Channel, DeliveryJob, JsonValue } from './types.ts';

/**
 * What a provider reports for one message. Providers never throw for delivery failures. `skipped`:
 * there was nothing to send to (the user has no address on this channel, or the channel has no
 * provider) — not a failure, so not a dead letter, and the notification can still be `done`.
 */
export type SendResult =
  /** `inbox`: an in-app delivery's text, for the worker to complete it with (DeliveryStore.completeInApp). */
  | { ok: true; detail?: JsonValue; inbox?: { title: string | null; body: string | null } }
  | { ok: false; permanent: boolean; error: string; retryAfterMs?: number }
  /** `reason`: a stable code (`opted_out`, `read`, `no_address`, …); the text says it for people. */
  | { ok: false; skipped: string; reason?: string };

/**
 * Why a permanent failure happened, when a channel can act on it: `token_dead` — the address (a push
 * device token) will never work again, so it is removed and never used again.
 */
export type PermanentReason = 'token_dead';

/** Sends one message on one channel. */
export interface ChannelProvider {
  readonly channel: Channel;
  readonly name: string;
  send(job: DeliveryJob): Promise<SendResult>;
}

/** What a rate limiter decided for one request, with what the `RateLimit-*` headers report. */
export interface RateLimitDecision {
  allowed: boolean;
  /** The bucket's size: requests a key that has been idle may send at once (`RateLimit-Limit`). */
  limit: number;
  /** Whole requests the key may still send right now, after this one (`RateLimit-Remaining`). */
  remaining: number;
  /** Seconds, rounded up, until the bucket is full again (`RateLimit-Reset`); 0 when it is full. */
  resetSeconds: number;
  /** Refused: seconds, rounded up and at least 1, until one request will be served. Allowed: 0. */
  retryAfterSeconds: number;
  /**
   * Refused: milliseconds, not rounded, until one request will be served; allowed: 0. For callers
   * that wait for a token instead of answering 429 (a provider's pace at 200/s waits 5 ms, where a
   * whole second would starve it). Optional so that limiters written before it still implement the
   * port; Herald's adapters always give it, and callers fall back to `retryAfterSeconds`.
   */
  retryAfterMs?: number;
}

/**
 * Admission per key: a token bucket of `burst` tokens refilled at `rps` tokens a second, full at
 * first. Promises: for one key, in any interval of `t` seconds at most `rps × t + burst` takes are
 * allowed — across every process that shares the limiter; a take that is refused consumes nothing,
 * so a client that keeps retrying early does not lock itself out; different keys never share a
 * bucket. Keys are opaque strings chosen by the caller (a digest, never a credential in clear).
 *
 * Deliberately absent: cost per request (every take is one token), queueing (a refused take is
 * answered at once), and per-key limits (one rate and burst for every key).
 */
export interface RateLimiter {
  readonly kind: string;
  /**
   * Takes one token from `key`'s bucket if it has one. `now`: milliseconds on the limiter's own
   * clock (tests); by default the adapter's clock.
   */
  take(key: string, now?: number): Promise<RateLimitDecision>;
  close(): Promise<void>;
}
