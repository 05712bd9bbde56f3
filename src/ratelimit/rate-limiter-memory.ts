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
import type { RateLimitDecision, RateLimiter } from '../core/ports.ts';

export interface MemoryRateLimiterOptions {
  /** Tokens added per second; more than 0. */
  rps: number;
  /** Bucket size, a whole number ≥ 1: what a key that has been idle may send at once. */
  burst: number;
  /** Milliseconds, monotonic. Default: `performance.now()`. */
  clock?: () => number;
}

/** Tolerance for floating-point rounding, in tokens: a client exactly at the rate is served. */
const SLACK = 1e-6;
/** The map is never swept below this many entries. */
const MIN_SWEEP = 1024;

export class MemoryRateLimiter implements RateLimiter {
  readonly kind = 'memory';
  private readonly burst: number;
  /** Milliseconds per token. */
  private readonly interval: number;
  /** A take is allowed while the bucket's fill time is at most this far ahead of now. */
  private readonly tolerance: number;
  private readonly clock: () => number;
  /** key → when its bucket is full again (ms on `clock`). Absent or past: full. */
  private readonly fullAt = new Map<string, number>();
  private sweepAt = MIN_SWEEP;

  constructor(options: MemoryRateLimiterOptions) {
    if (!(options.rps > 0) || !Number.isFinite(options.rps)) throw new RangeError('rps must be a number above 0');
    if (!Number.isInteger(options.burst) || options.burst < 1) throw new RangeError('burst must be a whole number ≥ 1');
    this.burst = options.burst;
    this.interval = 1000 / options.rps;
    this.tolerance = (options.burst - 1 + SLACK) * this.interval;
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
    if (ahead > this.tolerance) {
      return {
        allowed: false,
        limit: this.burst,
        remaining: 0,
        resetSeconds: Math.ceil(ahead / 1000),
        retryAfterSeconds: Math.max(1, Math.ceil((ahead - this.tolerance) / 1000)),
      };
    }
    const next = from + this.interval;
    if (stored === undefined && this.fullAt.size >= this.sweepAt) this.sweep(now);
    this.fullAt.set(key, next);
    const owed = (next - now) / this.interval;
    return {
      allowed: true,
      limit: this.burst,
      remaining: Math.max(0, Math.floor(this.burst - owed + SLACK)),
      resetSeconds: Math.ceil((next - now) / 1000),
      retryAfterSeconds: 0,
    };
  }

  async close(): Promise<void> {}

  /** Forgets every full bucket; the next sweep waits until the map has doubled. */
  private sweep(now: number): void {
    for (const [key, at] of this.fullAt) if (at <= now) this.fullAt.delete(key);
    this.sweepAt = Math.max(MIN_SWEEP, this.fullAt.size * 2);
  }
}
