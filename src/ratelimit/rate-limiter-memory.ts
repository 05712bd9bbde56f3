/**
 * The rate limiter in this process: one token bucket per key, kept as a single number — the time
 * at which the bucket will be full again (GCRA, the "virtual scheduling" form of a token bucket).
 *
 * Promises (the RateLimiter port's): for one key, in any interval of `t` seconds at most
 * `rps × t + burst` takes are allowed; a refused take consumes nothing. Exact up to floating-point
 * rounding (a millionth of a token). Time is the monotonic clock (`performance.now()`), so a wall
 * clock step neither refills nor drains a bucket.
 *
 * Memory: a key costs an entry only while its bucket is not full; full buckets are forgotten in
 * sweeps that run when the map has doubled since the last one (amortised O(1) per take), so the map
 * stays within twice the number of keys active in the last `burst / rps` seconds (at least 1024).
 *
 * Not shared between processes: with several api processes each allows the full rate. A take costs
 * one map lookup and one small object; no timers, nothing to close.
 */
import { performance } from 'node:perf_hooks';
import type { RateLimitDecision, RateLimiter } from '../core/ports-channels.ts';
import { allowedDecision, type BucketShape, bucketShape, refusedDecision } from './token-bucket-decision.ts';

export interface MemoryRateLimiterOptions {
  /** Tokens added per second; more than 0. */
  rps: number;
  /** Bucket size, a whole number ≥ 1: what a key that has been idle may send at once. */
  burst: number;
  /** Milliseconds, monotonic. Default: `performance.now()`. */
  clock?: () => number;
}

/** The map is never swept below this many entries. */
const MIN_SWEEP = 1024;

export class MemoryRateLimiter implements RateLimiter {
  readonly kind = 'memory';
  private readonly shape: BucketShape;
  private readonly clock: () => number;
  /** key → when its bucket is full again (ms on `clock`). Absent or past: full. */
  private readonly fullAt = new Map<string, number>();
  private sweepAt = MIN_SWEEP;

  constructor(options: MemoryRateLimiterOptions) {
    this.shape = bucketShape(options);
    this.clock = options.clock ?? (() => performance.now());
  }

  /** Buckets held (keys whose bucket is not known to be full). */
  get size(): number {
    return this.fullAt.size;
  }

  async take(key: string, now: number = this.clock()): Promise<RateLimitDecision> {
    return this.takeNow(key, now);
  }

  /** The decision, synchronously (the port is async for adapters that ask another process). */
  takeNow(key: string, now: number = this.clock()): RateLimitDecision {
    const stored = this.fullAt.get(key);
    const from = stored === undefined || stored < now ? now : stored;
    const ahead = from - now;
    if (ahead > this.shape.tolerance) return refusedDecision(this.shape, ahead);
    const next = from + this.shape.interval;
    if (stored === undefined && this.fullAt.size >= this.sweepAt) this.sweep(now);
    this.fullAt.set(key, next);
    return allowedDecision(this.shape, next - now);
  }

  async close(): Promise<void> {}

  /** Forgets every full bucket; the next sweep waits until the map has doubled. */
  private sweep(now: number): void {
    for (const [key, at] of this.fullAt) if (at <= now) this.fullAt.delete(key);
    this.sweepAt = Math.max(MIN_SWEEP, this.fullAt.size * 2);
  }
}
