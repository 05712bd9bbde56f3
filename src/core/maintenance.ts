/**
 * Background upkeep that makes the guarantees hold when something dies:
 * - reclaim: deliveries whose lease expired (their worker died) go back to pending and are
 *   announced again; so do digests (DigestStore), which the digest runners then take again;
 * - reconcile (only for a bus whose queue is not the store; in one process at a time, the holder of
 *   the `reconciler` lease): per lane, pending deliveries coming within the bus's horizon are
 *   published as the horizon moves over them (the store alone holds work due further ahead); and
 *   overdue ones — due over `overdueMs` ago — are published again, in case the bus lost them (the
 *   store is the source of truth, the bus only distributes), but only when nothing due waits in that
 *   lane of the bus: while something does, the overdue rows are most likely in it, and re-publishing
 *   a backlog would only duplicate it. After a run that found a full batch, the next comes in a second;
 * - purge: idempotency keys older than 24 h are deleted;
 * - vacuum: where the database has no autovacuum (the embedded store), dead rows are reclaimed
 *   every minute, so that each run has little to do;
 * - retention: expired notifications leave the store with everything about them, and the coming
 *   days' partitions are made (Store.runRetention), at start and then every `retentionEveryMs`.
 * Each task is safe to run in several processes at once.
 */
import type { HeraldEmitter } from './events.ts';
import type { DeliveryStore, DigestStore, NotificationStore, RetentionReport, Store } from './ports.ts';
import type { Bus } from './ports-bus.ts';
import type { TopicStore } from './topics.ts';
import { LANES, type Lane } from './types.ts';

export interface MaintenanceOptions {
  leaseMs: number;
  /** This process's name, as the holder of task leases (Store.tryLease). */
  node?: string;
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

/** The lease that makes one scheduler at a time reconcile. */
const RECONCILER = 'reconciler';

/** Rows one reconcile run publishes per lane and kind (coming due, overdue) at most. */
const RECONCILE_BATCH = 5_000;

export class Maintenance {
  private timers: NodeJS.Timeout[] = [];
  private running = new Set<Promise<unknown>>();
  /** Per lane: rows due up to this instant have been announced to the bus by this process. */
  private readonly announcedUntil = new Map<Lane, number>();
  private stopped = false;
  private reconcileTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: DeliveryStore &
      NotificationStore &
      Pick<Store, 'vacuum' | 'runRetention' | 'tryLease' | 'releaseLease'> &
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
    if (!this.bus.queueIsStore) this.reconcileLoop();
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
    this.stopped = true;
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.allSettled([...this.running]);
    if (!this.bus.queueIsStore) await this.store.releaseLease(RECONCILER, this.holder).catch(() => {});
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

  /**
   * One reconcile run (see the file's comment), if this process holds the `reconciler` lease. Resolves
   * to how many jobs it published, and whether a lane had more than one batch to publish.
   */
  async reconcile(): Promise<{ published: number; more: boolean }> {
    const interval = this.reconcileEveryMs();
    if (!(await this.store.tryLease(RECONCILER, this.holder, interval * 3))) {
      // Another scheduler announces; if it dies and this one takes over, it starts from now.
      this.announcedUntil.clear();
      return { published: 0, more: false };
    }
    let published = 0;
    let more = false;
    const now = Date.now();
    for (const lane of LANES) {
      if (Number.isFinite(this.bus.horizonMs)) {
        // Coming within the horizon since the last run (from now at the first: the publishers of rows
        // due sooner held them, or they become overdue and are found below).
        const until = now + this.bus.horizonMs;
        const from = this.announcedUntil.get(lane) ?? now;
        const coming = await this.store.findOverdue(new Date(until), RECONCILE_BATCH, {
          lane,
          dueAfter: new Date(from),
        });
        if (coming.length) await this.bus.publish(coming);
        published += coming.length;
        const full = coming.length === RECONCILE_BATCH;
        more ||= full;
        this.announcedUntil.set(lane, full ? (coming.at(-1)?.runAt.getTime() ?? until) : until);
      }
      if ((await this.bus.waiting(lane)) > 0) continue;
      const overdue = await this.store.findOverdue(
        new Date(now - (this.options.overdueMs ?? 30_000)),
        RECONCILE_BATCH,
        { lane },
      );
      if (overdue.length) await this.bus.publish(overdue);
      published += overdue.length;
      more ||= overdue.length === RECONCILE_BATCH;
    }
    return { published, more };
  }

  private get holder(): string {
    return this.options.node ?? `pid-${process.pid}`;
  }

  private reconcileEveryMs(): number {
    return Math.max(1_000, (this.options.overdueMs ?? 30_000) / 2);
  }

  /** Reconciles every `reconcileEveryMs`, or a second after a run that had more to publish. */
  private reconcileLoop(): void {
    const tick = () => {
      if (this.stopped) return;
      const p = this.reconcile()
        .catch((err: unknown) => {
          this.log.error({ err }, 'maintenance task failed');
          return { published: 0, more: false };
        })
        .then(({ more }) => {
          this.running.delete(p);
          if (this.stopped) return;
          this.reconcileTimer = setTimeout(tick, more ? 1_000 : this.reconcileEveryMs());
          this.reconcileTimer.unref();
        });
      this.running.add(p);
    };
    this.reconcileTimer = setTimeout(tick, this.reconcileEveryMs());
    this.reconcileTimer.unref();
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
