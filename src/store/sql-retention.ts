/**
 * Retention in SQL (migrations/0017_retention.sql; docs/architecture.md "Retention"). A run:
 * 1. creates the day partitions of the coming days (herald_retention_prepare);
 * 2. drops each past day whose notifications have all expired: its deliveries are deleted in
 *    batches (deliveries is not partitioned), its unread inbox entries are taken off their users'
 *    counters, and its notifications, inbox and timeline partitions are dropped in one transaction;
 * 3. sweeps, in batches, the expired notifications of the days that stay (a `ttl` shorter than the
 *    day's longest): their deliveries, inbox entries (counters adjusted), timeline and row.
 * Counters keep their promises across both: `last_seq` never goes down (the next entry's seq keeps
 * growing), `unread` loses exactly the unread entries removed, and `unread_from` moves to the first
 * unread entry left. Safe to run in several processes at once (each batch locks what it removes).
 */
import type { RetentionOptions, RetentionReport } from '../core/ports.ts';
import type { Sql, SqlClient } from './sql.ts';

/** Deliveries deleted per statement before a day is dropped. */
const DELIVERY_BATCH = 10_000;
/** Expired notifications removed per sweep transaction, and sweep transactions per run at most. */
const SWEEP_BATCH = 500;
const SWEEP_BATCHES_PER_RUN = 200;
/** How long a drop waits for the tables before it gives up until the next run (never a deadlock victim's 1 s). */
const DROP_LOCK_TIMEOUT = '500ms';

interface Day {
  suffix: string;
  lo: string | null;
  hi: string;
}

export class SqlRetention {
  constructor(private readonly sql: Sql) {}

  async run(options: RetentionOptions): Promise<RetentionReport> {
    const now = options.now ?? new Date();
    const report: RetentionReport = {
      partitions: { created: [], dropped: [] },
      removed: { notifications: 0, deliveries: 0, inboxItems: 0, timelineEvents: 0 },
    };
    const created = await this.sql.query<{ s: string }>(
      'SELECT s FROM herald_retention_prepare($1::timestamptz, $2::int) AS s',
      [now.toISOString(), options.daysAhead ?? 7],
    );
    report.partitions.created = created.map((r) => r.s);

    const past = await this.sql.query<Day>(
      `SELECT suffix, lo::text, hi::text FROM retention_partitions WHERE hi <= herald_uuid_floor($1::timestamptz)
       ORDER BY hi`,
      [now.toISOString()],
    );
    for (const day of past) {
      if (!(await this.expired(day, now, options.defaultRetentionMs))) continue;
      if (await this.dropDay(day, report)) report.partitions.dropped.push(day.suffix);
    }

    for (let i = 0; i < SWEEP_BATCHES_PER_RUN; i++) {
      const swept = await this.sweep(now, options.defaultRetentionMs, report);
      if (swept < SWEEP_BATCH) break;
    }
    return report;
  }

  /** Every notification of `day` has expired (through notifications_expiry: two index probes). */
  private async expired(day: Day, now: Date, defaultMs: number): Promise<boolean> {
    const [r] = await this.sql.query<{ live: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM notifications WHERE ($1::uuid IS NULL OR id >= $1::uuid) AND id < $2::uuid
                        AND expires_at > $3::timestamptz)
           OR EXISTS (SELECT 1 FROM notifications WHERE ($1::uuid IS NULL OR id >= $1::uuid) AND id < $2::uuid
                        AND expires_at IS NULL AND created_at > $3::timestamptz - $4 * interval '1 millisecond') AS live`,
      [day.lo, day.hi, now.toISOString(), defaultMs],
    );
    return r?.live === false;
  }

  private async dropDay(day: Day, report: RetentionReport): Promise<boolean> {
    const range = [day.lo, day.hi];
    for (;;) {
      const [d] = await this.sql.query<{ n: number }>(
        `WITH gone AS (DELETE FROM deliveries WHERE id IN (
           SELECT id FROM deliveries WHERE ($1::uuid IS NULL OR notification_id >= $1::uuid) AND notification_id < $2::uuid
           LIMIT $3) RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [...range, DELIVERY_BATCH],
      );
      report.removed.deliveries += d?.n ?? 0;
      if ((d?.n ?? 0) < DELIVERY_BATCH) break;
    }
    const tables = ['notifications', 'inbox', 'timeline'].map((t) => `${t}_${day.suffix}`);
    const [counts] = await this.sql.query<{ n: number; i: number; t: number }>(
      `SELECT (SELECT count(*)::int FROM ${tables[0]}) AS n, (SELECT count(*)::int FROM ${tables[1]}) AS i,
              (SELECT count(*)::int FROM ${tables[2]}) AS t`,
    );
    try {
      await this.sql.transaction(async (tx) => {
        // The parents first, in one order: no append, read or take can then hold a counter row this
        // transaction waits for while waiting for a table this transaction holds.
        await tx.query(`SET LOCAL lock_timeout = '${DROP_LOCK_TIMEOUT}'`);
        await tx.query('LOCK TABLE notifications, inbox, timeline IN ACCESS EXCLUSIVE MODE');
        const unread = await tx.query<{ user_id: string; n: number }>(
          `SELECT user_id, count(*)::int AS n FROM ${tables[1]} WHERE read_at IS NULL GROUP BY user_id ORDER BY user_id`,
        );
        await lockCounters(
          tx,
          unread.map((u) => u.user_id),
        );
        for (const t of tables) await tx.query(`DROP TABLE ${t}`);
        await tx.query('DELETE FROM retention_partitions WHERE suffix = $1', [day.suffix]);
        await takeOffCounters(tx, unread);
      });
    } catch (e) {
      // 55P03 lock_not_available: the tables were busy; the day is dropped by a later run.
      if ((e as { code?: string }).code === '55P03') return false;
      throw e;
    }
    report.removed.notifications += counts?.n ?? 0;
    report.removed.inboxItems += counts?.i ?? 0;
    report.removed.timelineEvents += counts?.t ?? 0;
    return true;
  }

  /** Removes up to SWEEP_BATCH expired notifications and what belongs to them; returns how many it found. */
  private async sweep(now: Date, defaultMs: number, report: RetentionReport): Promise<number> {
    const found = await this.sql.query<{ id: string }>(
      `(SELECT id FROM notifications WHERE expires_at <= $1::timestamptz ORDER BY expires_at LIMIT $2)
       UNION ALL
       (SELECT id FROM notifications WHERE expires_at IS NULL AND created_at <= $1::timestamptz - $3 * interval '1 millisecond'
        LIMIT $2)`,
      [now.toISOString(), SWEEP_BATCH, defaultMs],
    );
    if (!found.length) return 0;
    const ids = found.map((r) => r.id);
    await this.sql.transaction(async (tx) => {
      // Lock order as markRead's: the users' counter rows (in user order), then deliveries. A delivery
      // a take holds is skipped (never waited for: the take may be waiting for one of these counters);
      // its notification stays for the next run.
      const users = await tx.query<{ user_id: string }>(
        `SELECT DISTINCT user_id FROM deliveries WHERE notification_id = ANY($1::uuid[]) AND channel = 'in_app'`,
        [ids],
      );
      await lockCounters(
        tx,
        users.map((u) => u.user_id),
      );
      const [d] = await tx.query<{ n: number }>(
        `WITH gone AS (DELETE FROM deliveries WHERE id IN (
           SELECT id FROM deliveries WHERE notification_id = ANY($1::uuid[]) ORDER BY id FOR UPDATE SKIP LOCKED)
           RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [ids],
      );
      report.removed.deliveries += d?.n ?? 0;
      const held = new Set(
        (
          await tx.query<{ notification_id: string }>(
            'SELECT DISTINCT notification_id FROM deliveries WHERE notification_id = ANY($1::uuid[])',
            [ids],
          )
        ).map((r) => r.notification_id),
      );
      const gone = ids.filter((id) => !held.has(id));
      // Entries go now even for a held notification: a take that appends one later is swept next run.
      const entries = await tx.query<{ user_id: string; unread: boolean }>(
        `DELETE FROM inbox WHERE user_id = ANY($1::text[]) AND notification_id = ANY($2::uuid[])
         RETURNING user_id, read_at IS NULL AS unread`,
        [users.map((u) => u.user_id), ids],
      );
      report.removed.inboxItems += entries.length;
      const perUser = new Map<string, number>();
      for (const e of entries) if (e.unread) perUser.set(e.user_id, (perUser.get(e.user_id) ?? 0) + 1);
      await takeOffCounters(
        tx,
        [...perUser].map(([user_id, n]) => ({ user_id, n })),
      );
      if (!gone.length) return;
      const [t] = await tx.query<{ n: number }>(
        `WITH gone AS (DELETE FROM timeline WHERE notification_id = ANY($1::uuid[]) RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [gone],
      );
      report.removed.timelineEvents += t?.n ?? 0;
      const [n] = await tx.query<{ n: number }>(
        `WITH gone AS (DELETE FROM notifications WHERE id = ANY($1::uuid[]) RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [gone],
      );
      report.removed.notifications += n?.n ?? 0;
    });
    return found.length;
  }
}

/** Locks the counter rows of `users` in user order (the order every append upserts them in). */
async function lockCounters(tx: SqlClient, users: readonly string[]): Promise<void> {
  if (!users.length) return;
  await tx.query('SELECT 1 FROM inbox_counters WHERE user_id = ANY($1::text[]) ORDER BY user_id FOR UPDATE', [users]);
}

/**
 * Takes `n` removed unread entries off each user's count, and moves `unread_from` to the first unread
 * entry left (last_seq + 1 when none is): the entries below the old unread_from were all read, so the
 * search starts there. last_seq is left alone: seqs keep growing.
 */
async function takeOffCounters(tx: SqlClient, removed: readonly { user_id: string; n: number }[]): Promise<void> {
  if (!removed.length) return;
  await tx.query(
    `UPDATE inbox_counters c SET unread = greatest(c.unread - r.n, 0), unread_from = CASE
       WHEN c.unread - r.n <= 0 THEN c.last_seq + 1
       ELSE coalesce((SELECT i.seq FROM inbox i WHERE i.user_id = c.user_id AND i.seq >= c.unread_from
                        AND i.read_at IS NULL ORDER BY i.seq LIMIT 1), c.last_seq + 1) END
     FROM unnest($1::text[], $2::int[]) AS r(user_id, n)
     WHERE c.user_id = r.user_id`,
    [removed.map((r) => r.user_id), removed.map((r) => r.n)],
  );
}
