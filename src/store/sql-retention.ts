/**
 * Retention in SQL (migrations/0017_retention.sql; docs/architecture.md "Retention"). A run:
 * 1. creates the day partitions of the coming days (herald_retention_prepare; the store also does
 *    this when it opens, so rows find their day's partition with no scheduler running);
 * 2. drops each past day whose notifications have all expired: the rows that belong to its
 *    notifications in unpartitioned tables (OWNED_ROWS: deliveries; then inbox entries, taken off
 *    their users' counters) are deleted in batches, then its notifications and timeline partitions
 *    are dropped in one transaction;
 * 3. sweeps, in batches, the expired notifications of the days that stay (a `ttl` shorter than the
 *    day's longest): their deliveries, inbox entries (counters adjusted), timeline and row;
 * 4. deletes finished digests (sent, failed, dead, skipped) older than the default retention;
 * 5. deletes the cap counters of windows that ended over CAP_WINDOW_GRACE_MS ago.
 * Counters keep their promises across all of it: `last_seq` never goes down (the next entry's seq
 * keeps growing), `unread` loses exactly the unread entries removed, and `unread_from` moves to the
 * first unread entry left. Safe to run in several processes at once (each batch locks what it removes).
 */
import type { RetentionOptions, RetentionReport } from '../core/ports.ts';
import type { Sql, SqlClient } from './sql.ts';

/** Rows of an unpartitioned table deleted per statement before a day is dropped. */
const DELIVERY_BATCH = 10_000;
/** Inbox entries deleted per transaction (their users' counter rows are locked meanwhile). */
const INBOX_BATCH = 2_000;
/** Finished digests, and cap counters of ended windows, deleted per statement. */
const DELETE_BATCH = 5_000;
/**
 * How long a cap counter outlives its window: a worker whose clock lags behind may still count a
 * send in a window that has just ended (deleting it then would restart that window's count at 0).
 */
const CAP_WINDOW_GRACE_MS = 3_600_000;

/**
 * Unpartitioned tables whose rows belong to a notification and leave with it, in this order, before
 * its day is dropped (and with it when it is swept): each needs an index whose first column is
 * `column`; `counted` names the report's count, if any. A fan-out job goes first (its next page then
 * writes nothing), a fan-out-on-read item before the inbox (no subscriber materializes it afterwards).
 * The inbox is handled on its own (its counters). A table added later whose rows hang off a
 * notification is listed here, or partitioned by notification id like timeline (then
 * herald_retention_prepare creates its partitions and dropDay drops them).
 */
const OWNED_ROWS: readonly { table: string; column: string; counted: keyof RetentionReport['removed'] | null }[] = [
  { table: 'fanout_jobs', column: 'notification_id', counted: null },
  { table: 'topic_items', column: 'notification_id', counted: null },
  { table: 'deliveries', column: 'notification_id', counted: 'deliveries' },
];
/** Expired notifications removed per sweep transaction, and sweep transactions per run at most. */
const SWEEP_BATCH = 500;
const SWEEP_BATCHES_PER_RUN = 200;
/** How long a drop waits for the tables before it gives up until the next run (never a deadlock victim's 1 s). */
const DROP_LOCK_TIMEOUT = '500ms';
/** Days whose partitions exist ahead of today (at open and after every run). */
const DAYS_AHEAD = 7;

interface Day {
  suffix: string;
  lo: string | null;
  hi: string;
}

export class SqlRetention {
  constructor(private readonly sql: Sql) {}

  /** Creates the partitions of today and the `daysAhead` days after `now` that do not exist; returns their suffixes. */
  async prepare(now: Date, daysAhead = DAYS_AHEAD): Promise<string[]> {
    const created = await this.sql.query<{ s: string }>(
      'SELECT s FROM herald_retention_prepare($1::timestamptz, $2::int) AS s',
      [now.toISOString(), daysAhead],
    );
    return created.map((r) => r.s);
  }

  async run(options: RetentionOptions): Promise<RetentionReport> {
    const now = options.now ?? new Date();
    const report: RetentionReport = {
      partitions: { created: await this.prepare(now, options.daysAhead), dropped: [] },
      removed: { notifications: 0, deliveries: 0, inboxItems: 0, timelineEvents: 0, digests: 0, capWindows: 0 },
    };

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
    report.removed.digests = await this.removeInBatches(
      `DELETE FROM digests WHERE id IN (
         SELECT id FROM digests WHERE state IN ('sent', 'failed', 'dead', 'skipped')
           AND updated_at < $1::timestamptz - $2 * interval '1 millisecond' LIMIT $3)`,
      [now.toISOString(), options.defaultRetentionMs],
    );
    report.removed.capWindows = await this.removeInBatches(
      `DELETE FROM cap_counts WHERE ctid = ANY(ARRAY(
         SELECT ctid FROM cap_counts WHERE window_end < $1::timestamptz - $2 * interval '1 millisecond' LIMIT $3))`,
      [now.toISOString(), CAP_WINDOW_GRACE_MS],
    );
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

  /**
   * Removes a day: the rows of its notifications in unpartitioned tables first, in batches (deliveries
   * before inbox entries: once a delivery is gone nothing appends an entry for it, so the entries found
   * afterwards are all there will be), then its partitions in one transaction. Rows another transaction
   * holds are skipped, never waited for (a "mark all read" may hold them while it waits for something
   * this run holds); the day is then left for a later run. Returns whether the day was dropped.
   */
  private async dropDay(day: Day, report: RetentionReport): Promise<boolean> {
    const range = [day.lo, day.hi];
    for (const owned of OWNED_ROWS) {
      const inDay = `($1::uuid IS NULL OR ${owned.column} >= $1::uuid) AND ${owned.column} < $2::uuid`;
      for (;;) {
        const [d] = await this.sql.query<{ n: number }>(
          `WITH gone AS (DELETE FROM ${owned.table} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM ${owned.table} WHERE ${inDay} LIMIT $3 FOR UPDATE SKIP LOCKED)) RETURNING 1)
           SELECT count(*)::int AS n FROM gone`,
          [...range, DELIVERY_BATCH],
        );
        if (owned.counted) report.removed[owned.counted] += d?.n ?? 0;
        if ((d?.n ?? 0) < DELIVERY_BATCH) break;
      }
      const [left] = await this.sql.query<{ any: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM ${owned.table} WHERE ${inDay}) AS any`,
        range,
      );
      if (left?.any) return false;
    }
    for (;;) {
      const entries = await this.sql.query<{ user_id: string; seq: string }>(
        `SELECT user_id, seq::text FROM inbox
         WHERE ($1::uuid IS NULL OR notification_id >= $1::uuid) AND notification_id < $2::uuid LIMIT $3`,
        [...range, INBOX_BATCH],
      );
      if (entries.length) report.removed.inboxItems += await this.sql.transaction((tx) => removeEntries(tx, entries));
      if (entries.length < INBOX_BATCH) break;
    }
    const tables = ['notifications', 'timeline'].map((t) => `${t}_${day.suffix}`);
    const [counts] = await this.sql.query<{ n: number; t: number }>(
      `SELECT (SELECT count(*)::int FROM ${tables[0]}) AS n, (SELECT count(*)::int FROM ${tables[1]}) AS t`,
    );
    try {
      await this.sql.transaction(async (tx) => {
        // The parents first, in one order; a busy moment gives up rather than queue every reader behind it.
        await tx.query(`SET LOCAL lock_timeout = '${DROP_LOCK_TIMEOUT}'`);
        await tx.query('LOCK TABLE notifications, timeline IN ACCESS EXCLUSIVE MODE');
        for (const t of tables) await tx.query(`DROP TABLE ${t}`);
        await tx.query('DELETE FROM retention_partitions WHERE suffix = $1', [day.suffix]);
      });
    } catch (e) {
      // 55P03 lock_not_available: the tables were busy; the day is dropped by a later run.
      if ((e as { code?: string }).code === '55P03') return false;
      throw e;
    }
    report.removed.notifications += counts?.n ?? 0;
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
      // another transaction holds is skipped (never waited for); its notification stays for the next run.
      const entries = await tx.query<{ user_id: string; seq: string }>(
        'SELECT user_id, seq::text FROM inbox WHERE notification_id = ANY($1::uuid[])',
        [ids],
      );
      await lockCounters(tx, [...new Set(entries.map((e) => e.user_id))]);
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
      report.removed.inboxItems += await removeEntries(tx, entries);
      if (!gone.length) return;
      for (const owned of OWNED_ROWS.filter((o) => o.table !== 'deliveries')) {
        const [o] = await tx.query<{ n: number }>(
          `WITH gone AS (DELETE FROM ${owned.table} WHERE ${owned.column} = ANY($1::uuid[]) RETURNING 1)
           SELECT count(*)::int AS n FROM gone`,
          [gone],
        );
        if (owned.counted) report.removed[owned.counted] += o?.n ?? 0;
      }
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

  /**
   * Runs `deleteStatement` (its parameters: `params`, then the batch size, which it deletes at most)
   * until it deletes fewer than DELETE_BATCH rows; returns how many it deleted in all. Finished
   * digests (sent, failed, dead, skipped) older than the default retention leave this way — their
   * member deliveries leave with their notifications, and a pending or processing digest stays
   * whatever its age — and so do cap counters of ended windows.
   */
  private async removeInBatches(deleteStatement: string, params: readonly unknown[]): Promise<number> {
    let removed = 0;
    for (;;) {
      const [d] = await this.sql.query<{ n: number }>(
        `WITH gone AS (${deleteStatement} RETURNING 1) SELECT count(*)::int AS n FROM gone`,
        [...params, DELETE_BATCH],
      );
      removed += d?.n ?? 0;
      if ((d?.n ?? 0) < DELETE_BATCH) return removed;
    }
  }
}

/**
 * Deletes inbox entries by (user_id, seq) and takes the unread ones off their users' counters; returns
 * how many it deleted. The counter rows are locked first, in user order (as appends and markRead lock
 * them), so no append or read of these users interleaves. An entry already gone (replaced by an
 * aggregated item meanwhile) is skipped.
 */
async function removeEntries(tx: SqlClient, entries: readonly { user_id: string; seq: string }[]): Promise<number> {
  if (!entries.length) return 0;
  await lockCounters(tx, [...new Set(entries.map((e) => e.user_id))]);
  const removed = await tx.query<{ user_id: string; unread: boolean }>(
    `DELETE FROM inbox i USING unnest($1::text[], $2::bigint[]) AS k(user_id, seq)
     WHERE i.user_id = k.user_id AND i.seq = k.seq
     RETURNING i.user_id, i.read_at IS NULL AS unread`,
    [entries.map((e) => e.user_id), entries.map((e) => e.seq)],
  );
  const perUser = new Map<string, number>();
  for (const e of removed) if (e.unread) perUser.set(e.user_id, (perUser.get(e.user_id) ?? 0) + 1);
  await takeOffCounters(
    tx,
    [...perUser].map(([user_id, n]) => ({ user_id, n })),
  );
  return removed.length;
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
