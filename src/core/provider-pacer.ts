/**
 * A provider's send rate: a token bucket (GCRA, virtual scheduling) that paces instead of refusing.
 * `reserve` books the next free slot and says how long to wait for it, so concurrent senders queue
 * in order and the provider sees at most `perSecond × t + burst` sends in any interval of `t`
 * seconds (one-second windows included), however many lanes and slots send at once.
 *
 * A reservation further away than the caller may wait is not booked (nothing is consumed), so a
 * send that gives up does not slow the others. In-process: with several worker processes each
 * paces on its own (document the per-process limit, or divide it).
 */
import { performance } from 'node:perf_hooks';

export interface PaceSettings {
  /** Sends per second; more than 0. */
  perSecond: number;
  /** Sends an idle provider may take at once; a whole number ≥ 1. */
  burst: number;
}

export class ProviderPacer {
  /** Milliseconds per send. */
  private readonly interval: number;
  /** How far ahead of now the bucket's "theoretical arrival time" may run: burst − 1 intervals. */
  private readonly tolerance: number;
  /** When the next send would be on schedule (ms, monotonic); ≤ now: the bucket has room. */
  private tat = Number.NEGATIVE_INFINITY;

  constructor(
    readonly settings: PaceSettings,
    private readonly clock: () => number = () => performance.now(),
  ) {
    if (!(settings.perSecond > 0) || !Number.isFinite(settings.perSecond)) {
      throw new RangeError('perSecond must be a number above 0');
    }
    if (!Number.isInteger(settings.burst) || settings.burst < 1)
      throw new RangeError('burst must be a whole number ≥ 1');
    this.interval = 1000 / settings.perSecond;
    this.tolerance = (settings.burst - 1) * this.interval;
  }

  /**
   * Books one send. Returns the milliseconds to wait before sending (0: now), or null when that
   * would be more than `maxWaitMs` (nothing booked).
   */
  reserve(maxWaitMs: number, now: number = this.clock()): number | null {
    const tat = Math.max(this.tat, now);
    // The send may go at tat − tolerance; the bucket then runs one interval further.
    const wait = Math.max(0, tat - this.tolerance - now);
    if (wait > maxWaitMs) return null;
    this.tat = tat + this.interval;
    return wait;
  }

  /** Milliseconds until a send could go without waiting. */
  waitFor(now: number = this.clock()): number {
    return Math.max(0, Math.max(this.tat, now) - this.tolerance - now);
  }
}
