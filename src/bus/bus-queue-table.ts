/**
 * The embedded bus: the deliveries table is the queue. A committed pending row *is* the published
 * job, so `publish` only wakes local consumers, and `claim` tells the worker to take a lane's due
 * rows straight from the store: the store finds them (`FOR UPDATE SKIP LOCKED`, oldest due first,
 * from the partial index `deliveries_due`) and starts them in the same statement.
 *
 * Guarantees: at-least-once by construction (the row stays pending until the store's
 * compare-and-set moves it), nothing to lose (no second copy of the work exists), lanes are
 * independent queries so a deep bulk lane costs a critical claim nothing but an index probe.
 * Takers in several processes skip each other's locked rows, and the store's compare-and-set lets
 * exactly one of them start a delivery. Within the process a consumer is woken at once; across
 * processes it learns of new work from `wakeups` where there are any (Redis, in the distributed
 * mode: bus-wake-redis.ts), else by polling (`HERALD_POLL_MS`).
 */

import type { TakeFrom } from '../core/ports.ts';
import type { Bus } from '../core/ports-bus.ts';
import type { BusJob } from '../core/types.ts';
import { LANES, type Lane } from '../core/types.ts';

/** Tells other processes' consumers that a lane has work (lossy: a missed one costs a poll). */
export interface Wakeups {
  readonly kind: string;
  notify(lane: Lane): void;
  /** Calls `onWake` for every lane another process (or this one) said has work. */
  listen(onWake: (lane: Lane) => void): Promise<void>;
  close(): Promise<void>;
}

export class QueueTableBus implements Bus {
  readonly queueIsStore = true;
  /** The store holds every job, however far ahead it is due. */
  readonly horizonMs = Number.POSITIVE_INFINITY;
  /** Bounded by the store's disk, not by the bus: ingest's own limits apply. */
  readonly full = false;
  private readonly waiters = new Map<Lane, Set<() => void>>(LANES.map((l) => [l, new Set()]));
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly wakeups: Wakeups | null = null) {}

  get kind(): string {
    return this.wakeups ? `queue-table (wake-ups: ${this.wakeups.kind})` : 'queue-table';
  }

  /** Starts hearing other processes' wake-ups (before the workers' first claim). */
  async start(): Promise<void> {
    await this.wakeups?.listen((lane) => this.wake(lane));
  }

  async publish(jobs: readonly BusJob[]): Promise<void> {
    const now = Date.now();
    const wakeAt = new Map<Lane, number>();
    for (const j of jobs) {
      const at = j.runAt.getTime();
      wakeAt.set(j.lane, Math.min(wakeAt.get(j.lane) ?? at, at));
    }
    for (const [lane, at] of wakeAt) {
      if (at <= now) this.announce(lane);
      else if (at - now < 60_000 && !this.closed) {
        // Wake the lane when its earliest job falls due rather than at the next poll.
        const t = setTimeout(
          () => {
            this.timers.delete(t);
            this.announce(lane);
          },
          at - now + 1,
        );
        t.unref();
        this.timers.add(t);
      }
    }
  }

  /** The store takes the lane's due rows itself (`FOR UPDATE SKIP LOCKED`, oldest due first) as it starts them. */
  async claim(lane: Lane, max: number): Promise<TakeFrom> {
    return { lane, max: this.closed ? 0 : max };
  }

  async ack(): Promise<void> {
    // Nothing to forget: the store's state change already removed the row from the due index.
  }

  /** Nothing waits in the bus: a due row is taken straight from the store. */
  async waiting(): Promise<number> {
    return 0;
  }

  waitForWork(lane: Lane, timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const set = this.waiters.get(lane) as Set<() => void>;
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      set.add(done);
    });
  }

  /** Work is due in `lane`: this process's consumers now, the others' through the wake-ups. */
  private announce(lane: Lane): void {
    this.wake(lane);
    this.wakeups?.notify(lane);
  }

  private wake(lane: Lane): void {
    for (const w of [...(this.waiters.get(lane) ?? [])]) w();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.wakeups?.close();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const lane of LANES) this.wake(lane);
  }
}
