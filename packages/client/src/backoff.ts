/**
 * Reconnect delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential
 * Backoff and Jitter"). The delay before try `attempt` (0 = the first retry) is uniform in
 * `[0, min(maxMs, baseMs · 2^attempt))`, so clients that lost the server together do not come
 * back together.
 */

export interface BackoffOptions {
  /** The ceiling of the first retry. */
  baseMs: number;
  /** No delay reaches this. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

/** `min(maxMs, baseMs · 2^attempt)`; a negative or fractional attempt counts as the integer below, at least 0. */
export function backoffCeiling(attempt: number, { baseMs, maxMs }: BackoffOptions): number {
  const n = Math.max(0, Math.floor(attempt));
  // 2^n overflows to Infinity for large n; min() still answers maxMs.
  return Math.max(0, Math.min(maxMs, baseMs * 2 ** n));
}

/** A delay in whole milliseconds, uniform in `[0, backoffCeiling(attempt))`; `random` returns `[0, 1)`. */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, options));
}
