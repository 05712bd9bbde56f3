/**
 * The embedded bus: the deliveries table is the queue. A committed pending row *is* the published
 * job, so `publish` only wakes local consumers; `claim` picks due rows of one lane with
 * `FOR UPDATE SKIP LOCKED`, oldest due first, served from the partial index `deliveries_due`.
 *
 * Guarantees: at-least-once by construction (the row stays pending until the store's
 * compare-and-set moves it), nothing to lose (no second copy of the work exists), lanes are
 * independent queries so a deep bulk lane costs a critical claim nothing but an index probe.
 * Not promised: exclusive claims across processes — two processes may be handed the same id; the
 * store's compare-and-set lets exactly one of them work on it. Across processes a consumer learns
 * of new work by polling (`HERALD_POLL_MS`); within the process it is woken at once.
 */
import type { Bus } from '../core/ports.ts';
import type { BusJob } from '../core/types.ts';
import { LANES, type Lane } from '../core/types.ts';
import type { SqlClient } from '../store/sql.ts';

export class QueueTableBus implements Bus {
  readonly kind = 'queue-table';
  private readonly waiters = new Map<Lane, Set<() => void>>(LANES.map((l) => [l, new Set()]));
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly sql: SqlClient) {}

  async publish(jobs: readonly BusJob[]): Promise<void> {
    const now = Date.now();
    const wakeAt = new Map<Lane, number>();
    for (const j of jobs) {
      const at = j.runAt.getTime();
      wakeAt.set(j.lane, Math.min(wakeAt.get(j.lane) ?? at, at));
    }
    for (const [lane, at] of wakeAt) {
      if (at <= now) this.wake(lane);
      else if (at - now < 60_000 && !this.closed) {
        // Wake the lane when its earliest job falls due rather than at the next poll.
        const t = setTimeout(
          () => {
            this.timers.delete(t);
            this.wake(lane);
          },
          at - now + 1,
        );
        t.unref();
        this.timers.add(t);
      }
    }
  }

  async claim(lane: Lane, max: number): Promise<string[]> {
    if (max <= 0 || this.closed) return [];
    const rows = await this.sql.query<{ id: string }>(
      `SELECT id FROM deliveries WHERE lane = $1 AND state = 'pending' AND next_attempt_at <= now()
       ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
      [lane, max],
    );
    return rows.map((r) => r.id);
  }

  async ack(): Promise<void> {
    // Nothing to forget: the store's state change already removed the row from the due index.
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

  private wake(lane: Lane): void {
    for (const w of [...(this.waiters.get(lane) ?? [])]) w();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const lane of LANES) this.wake(lane);
  }
}
