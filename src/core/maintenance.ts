/**
 * Background upkeep that makes the guarantees hold when something dies:
 * - reclaim: deliveries whose lease expired (their worker died) go back to pending and are
 *   announced again; so do digests (DigestStore), which the digest runners then take again;
 * - reconcile: pending deliveries that are overdue are announced again, in case the bus lost them
 *   (the store is the source of truth, the bus only distributes); not scheduled for a bus whose
 *   queue is the store (it would only scan every pending row of a backlog every 15 s);
 * - purge: idempotency keys older than 24 h are deleted;
 * - vacuum: where the database has no autovacuum (the embedded store), dead rows are reclaimed
 *   every minute, so that each run has little to do;
 * - retention: expired notifications leave the store with everything about them, and the coming
 *   days' partitions are made (Store.runRetention), at start and then every `retentionEveryMs`.
 * Each task is safe to run in several processes at once.
 */
import type { HeraldEmitter } from './events.ts';
import type { Bus, DeliveryStore, DigestStore, NotificationStore, RetentionReport, Store } from './ports.ts';
import type { TopicStore } from './topics.ts';

export interface MaintenanceOptions {
  leaseMs: number;
  /** How late a pending delivery must be before it is re-announced. Default 30 s. */
  overdueMs?: number;
  /** How often the store is vacuumed (a no-op where the database does it itself). Default 60 s. */
  vacuumEveryMs?: number;
  /** Default retention (HERALD_RETENTION). Default 30 days. */
  retentionMs?: number;
  /** How often retention runs. Default 1 h. */
  retentionEveryMs?: number;
}

export interface MaintenanceLog {
  error(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

export class Maintenance {
  private timers: NodeJS.Timeout[] = [];
  private running = new Set<Promise<unknown>>();

  constructor(
    private readonly store: DeliveryStore &
      NotificationStore &
      Pick<Store, 'vacuum' | 'runRetention'> &
      Pick<DigestStore, 'reclaimExpiredDigests'> &
      Pick<TopicStore, 'purgeTopics'>,
    private readonly bus: Bus,
    private readonly events: HeraldEmitter,
    private readonly log: MaintenanceLog,
    private readonly options: MaintenanceOptions,
  ) {}

  start(): void {
    const reclaimEvery = Math.max(100, Math.min(5_000, Math.floor(this.options.leaseMs / 4)));
    this.every(reclaimEvery, () => this.reclaim());
    if (!this.bus.queueIsStore)
      this.every(Math.max(1_000, (this.options.overdueMs ?? 30_000) / 2), () => this.reconcile());
    this.every(3_600_000, () => this.store.purgeIdempotencyKeys(new Date(Date.now() - 24 * 3_600_000)));
    this.every(this.options.vacuumEveryMs ?? 60_000, () => this.store.vacuum());
    this.every(this.options.retentionEveryMs ?? 3_600_000, () => this.retention(), true);
  }

  /** One retention run now (the periodic task, and POST /v1/maintenance/retention); logs what it removed. */
  async retention(now?: Date): Promise<RetentionReport> {
    const retentionMs = this.options.retentionMs ?? 30 * 86_400_000;
    const report = await this.store.runRetention({ defaultRetentionMs: retentionMs, ...(now ? { now } : {}) });
    // Topics' own leftovers of the same age: tombstones no running job reads, finished jobs, old items.
    const topics = await this.store.purgeTopics(new Date((now ?? new Date()).getTime() - retentionMs));
    const { created, dropped } = report.partitions;
    if (
      created.length ||
      dropped.length ||
      Object.values(report.removed).some((n) => n > 0) ||
      Object.values(topics).some((n) => n > 0)
    )
      this.log.info?.({ ...report, topics }, 'retention run');
    return report;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.allSettled([...this.running]);
  }

  /**
   * Returns expired leases to the queue; resolves to how many. `unexpired`: every lease, for a
   * start-up on a store no other process can use (whoever held those leases has died).
   */
  async reclaim(options: { unexpired?: boolean } = {}): Promise<number> {
    let total = 0;
    for (;;) {
      const back = await this.store.reclaimExpired(1000, options);
      if (!back.length) break;
      total += back.length;
      const now = new Date();
      await this.bus.publish(back.map((b) => ({ id: b.id, lane: b.lane, runAt: now })));
      if (back.length < 1000) break;
    }
    if (total) this.events.emit('delivery:reclaimed', { count: total });
    // Digests are few (one per user × window): their runners find them in the store, nothing to announce.
    while ((await this.store.reclaimExpiredDigests(1000, options)) === 1000) {}
    return total;
  }

  async reconcile(): Promise<number> {
    const overdue = await this.store.findOverdue(new Date(Date.now() - (this.options.overdueMs ?? 30_000)), 1000);
    if (overdue.length) await this.bus.publish(overdue);
    return overdue.length;
  }

  /** Runs `task` every `ms` (and once right away with `now`), never two runs of it at once. */
  private every(ms: number, task: () => Promise<unknown>, now = false): void {
    let busy = false;
    const tick = () => {
      if (busy) return;
      busy = true;
      const p = task()
        .catch((err: unknown) => this.log.error({ err }, 'maintenance task failed'))
        .finally(() => {
          busy = false;
          this.running.delete(p);
        });
      this.running.add(p);
    };
    const t = setInterval(tick, ms);
    t.unref();
    if (now) tick();
    this.timers.push(t);
  }
}
