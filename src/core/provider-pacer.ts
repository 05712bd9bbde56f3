/**
 * A provider's send rate: a token bucket (GCRA, virtual scheduling) that a send waits for instead of
 * being refused. A token is taken only at the moment the send may start (`tryTake` at the clock's
 * now), never booked ahead, so the sends that really start obey the limit — at most
 * `perSecond × t + burst` in any interval of `t` seconds (one-second windows included) — even when
 * the event loop stalls and many timers fire at once: after a stall only the burst goes at once.
 * A caller that is refused waits the time it is told and tries again; one that gives up consumed
 * nothing. In-process: with several worker processes each paces on its own (provider-pace-shared.ts
 * paces them together through a shared RateLimiter).
 */
import { performance } from 'node:perf_hooks';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface PaceSettings {
  /** Sends per second; more than 0. */
  perSecond: number;
  /** Sends an idle provider may take at once; a whole number ≥ 1. */
  burst: number;
}

/**
 * What a route asks of a provider's pace: a token now or after a bounded wait. In this process
 * (ProviderPacer) or shared by every worker through a RateLimiter (SharedPace).
 */
export interface SendPace {
  readonly settings: PaceSettings;
  /**
   * Waits for a token, up to `maxWaitMs`: true when one was taken (the send may start now), false
   * when none would come in time — then nothing was consumed.
   */
  take(maxWaitMs: number): Promise<boolean>;
  /** Milliseconds until a send could go without waiting, as far as this process knows. */
  waitFor(): number;
}

export class ProviderPacer implements SendPace {
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

  /** Takes a token if one is there now: returns 0 (send now), or the milliseconds until one may be. */
  tryTake(now: number = this.clock()): number {
    const tat = Math.max(this.tat, now);
    const wait = tat - this.tolerance - now;
    if (wait > 0) return wait;
    this.tat = tat + this.interval;
    return 0;
  }

  async take(maxWaitMs: number): Promise<boolean> {
    const deadline = this.clock() + maxWaitMs;
    for (;;) {
      const wait = this.tryTake();
      if (wait === 0) return true;
      if (this.clock() + wait > deadline) return false;
      await sleep(Math.max(1, wait));
    }
  }

  /** Milliseconds until a send could go without waiting. */
  waitFor(now: number = this.clock()): number {
    return Math.max(0, Math.max(this.tat, now) - this.tolerance - now);
  }
}
