/**
 * The RateLimitDecision of a GCRA token bucket, from the two numbers a take computes: how far ahead
 * of now the bucket's fill time is. Shared by every adapter so that the `RateLimit-*` fields mean
 * exactly the same whichever process (or Redis script) kept the bucket.
 */
import type { RateLimitDecision } from '../core/ports-channels.ts';

/** Tolerance for floating-point rounding, in tokens: a client exactly at the rate is served. */
export const SLACK = 1e-6;

/** The bucket's constants: milliseconds per token, and how far ahead the fill time may run. */
export interface BucketShape {
  burst: number;
  /** Milliseconds per token (1000 / rps). */
  interval: number;
  /** A take is allowed while the fill time is at most this far ahead of now: burst − 1 tokens (+ SLACK). */
  tolerance: number;
}

/** Checks the options once and derives the bucket's constants. */
export function bucketShape(options: { rps: number; burst: number }): BucketShape {
  if (!(options.rps > 0) || !Number.isFinite(options.rps)) throw new RangeError('rps must be a number above 0');
  if (!Number.isInteger(options.burst) || options.burst < 1) throw new RangeError('burst must be a whole number ≥ 1');
  const interval = 1000 / options.rps;
  return { burst: options.burst, interval, tolerance: (options.burst - 1 + SLACK) * interval };
}

/** Refused: the fill time is `ahead` ms after now, more than the tolerance. */
export function refusedDecision(shape: BucketShape, ahead: number): RateLimitDecision {
  // Waiting exactly retryAfterMs leaves the fill time burst − 1 tokens ahead, SLACK inside the
  // tolerance: a caller that sleeps that long is served despite the rounding of the subtraction.
  const wait = ahead - (shape.burst - 1) * shape.interval;
  return {
    allowed: false,
    limit: shape.burst,
    remaining: 0,
    resetSeconds: Math.ceil(ahead / 1000),
    retryAfterSeconds: Math.max(1, Math.ceil((ahead - shape.tolerance) / 1000)),
    retryAfterMs: wait,
  };
}

/** Allowed: after this take the bucket is full again in `owedMs` ms. */
export function allowedDecision(shape: BucketShape, owedMs: number): RateLimitDecision {
  return {
    allowed: true,
    limit: shape.burst,
    remaining: Math.max(0, Math.floor(shape.burst - owedMs / shape.interval + SLACK)),
    resetSeconds: Math.ceil(owedMs / 1000),
    retryAfterSeconds: 0,
    retryAfterMs: 0,
  };
}
