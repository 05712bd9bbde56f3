/**
 * A circuit breaker per provider: after `failures` transient failures in a row it opens, and the
 * route stops sending to that provider (its deliveries go to the next provider of the channel, or
 * wait); after `openMs` it lets exactly one send through (half-open): a success closes it, a failure
 * opens it again for another `openMs`. Only transient failures count — a permanent answer (a mailbox
 * that does not exist) says the provider works.
 *
 * States are per process: every worker process learns a provider's health from its own sends.
 */
import { performance } from 'node:perf_hooks';

export interface BreakerSettings {
  /** Transient failures in a row that open the breaker; ≥ 1. */
  failures: number;
  /** How long it stays open before a probe, in milliseconds. */
  openMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerStatus {
  state: BreakerState;
  /** Transient failures in a row so far. */
  consecutiveFailures: number;
  /** When it last opened (wall clock); null if it never has. */
  openedAt: Date | null;
  /** While open: when the next probe may go (wall clock). */
  probeAt: Date | null;
  /** Times it opened since start. */
  opened: number;
}

export class CircuitBreaker {
  private failuresInARow = 0;
  /** Monotonic ms when a probe may go; 0 while closed. */
  private reopenAt = 0;
  private probing = false;
  private openedAtWall: Date | null = null;
  private timesOpened = 0;

  constructor(
    readonly settings: BreakerSettings,
    private readonly clock: () => number = () => performance.now(),
  ) {
    if (!Number.isInteger(settings.failures) || settings.failures < 1) {
      throw new RangeError('failures must be a whole number ≥ 1');
    }
    if (!(settings.openMs >= 0)) throw new RangeError('openMs must be ≥ 0');
  }

  get state(): BreakerState {
    if (this.reopenAt === 0) return 'closed';
    return this.clock() >= this.reopenAt ? 'half_open' : 'open';
  }

  /**
   * May a send go now? Closed: yes. Open: no. Half-open: yes for one caller (the probe) until its
   * outcome is recorded; the others are told no.
   */
  allow(): boolean {
    if (this.reopenAt === 0) return true;
    if (this.clock() < this.reopenAt || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** Milliseconds until a send may be allowed again (0 when closed or ready to probe). */
  waitFor(): number {
    return this.reopenAt === 0 ? 0 : Math.max(0, this.reopenAt - this.clock());
  }

  succeeded(): void {
    this.failuresInARow = 0;
    this.reopenAt = 0;
    this.probing = false;
  }

  failed(): void {
    this.failuresInARow++;
    const wasProbe = this.probing;
    this.probing = false;
    if (wasProbe || (this.reopenAt === 0 && this.failuresInARow >= this.settings.failures)) {
      this.reopenAt = this.clock() + this.settings.openMs;
      this.openedAtWall = new Date();
      this.timesOpened++;
    }
  }

  /** A send that was allowed ended without saying anything of the provider (a skip): free the probe. */
  released(): void {
    this.probing = false;
  }

  status(): BreakerStatus {
    const state = this.state;
    return {
      state,
      consecutiveFailures: this.failuresInARow,
      openedAt: this.openedAtWall,
      probeAt: state === 'open' ? new Date(Date.now() + this.waitFor()) : null,
      opened: this.timesOpened,
    };
  }
}
