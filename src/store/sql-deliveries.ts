/**
 * The delivery state machine in SQL. Every transition is one UPDATE whose WHERE clause is the
 * compare (state, and for a held delivery its lease token), and writes its timeline events in
 * the same transaction.
 */

import { UUID_RE } from '../core/ids.ts';
import type { DeliveryStore, StartedWork, TakeFrom } from '../core/ports.ts';
import {
  type AttemptOutcome,
  CHANNELS,
  type DeadLetter,
  type DeliveryState,
  type InAppAppended,
  type InAppCompletion,
  type Lane,
} from '../core/types.ts';
import { decodeCursor, encodeCursor, type StartedRow, toInboxDelivery, toJob } from './rows.ts';
import type { Sql } from './sql.ts';

export class SqlDeliveryStore implements DeliveryStore {
  constructor(private readonly sql: Sql) {}

  async startAttempts(from: TakeFrom, leaseMs: number): Promise<StartedWork> {
    if ('ids' in from && !from.ids.length) return { jobs: [], inbox: [] };
    // One call of migrations/0002_take_function.sql: a function, so that its plan is prepared once per
    // connection.
    const rows = await this.sql.query<StartedRow>(
      'SELECT * FROM herald_take($1, $2::uuid[], $3, $4)',
      'ids' in from ? [leaseMs, from.ids, null, null] : [leaseMs, null, from.lane, from.max],
    );
    const out: StartedWork = { jobs: [], inbox: [] };
    for (const r of rows) {
      if (r.seq === null) out.jobs.push(toJob(r));
      else out.inbox.push(toInboxDelivery(r, Number(r.seq)));
    }
    return out;
  }

  async finishAttempts(outcomes: readonly AttemptOutcome[]): Promise<boolean[]> {
    if (!outcomes.length) return [];
    // One statement (it commits by itself): the compare-and-set on the lease token, and a timeline
    // event for each outcome that matched. `d.id = ANY($1)` keeps the planner on the primary key.
    // A deferred delivery (its destination was busy) goes back to pending as if it had not been
    // taken: its attempt is given back and its last error kept.
    const done = await this.sql.query<{ id: string }>(
      `WITH u AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::text[],
                              $8::boolean[])
           AS u(id, token, state, err, next_at, extra, reason, deferred)),
       done AS (
         UPDATE deliveries d SET state = u.state,
           last_error = CASE WHEN u.deferred THEN d.last_error ELSE u.err END,
           reason = CASE WHEN u.deferred THEN d.reason ELSE u.reason END,
           attempts = CASE WHEN u.deferred THEN greatest(d.attempts - 1, 0) ELSE d.attempts END,
           next_attempt_at = COALESCE(u.next_at, d.next_attempt_at), lease_token = NULL, lease_until = NULL,
           updated_at = now()
         FROM u
         WHERE d.id = ANY($1::uuid[]) AND d.id = u.id AND d.lease_token = u.token AND d.state = 'processing'
         RETURNING d.id, d.notification_id, d.user_id, d.channel, d.attempts, u.state, u.extra, u.deferred),
       events AS (
         INSERT INTO timeline (notification_id, delivery_id, event, detail)
         SELECT notification_id, id,
                CASE WHEN deferred THEN 'deferred' WHEN state = 'pending' THEN 'attempt_failed' ELSE state END,
                jsonb_build_object('userId', user_id, 'channel', channel, 'attempt', attempts) || extra
         FROM done)
       SELECT id FROM done`,
      [
        outcomes.map((o) => o.deliveryId),
        outcomes.map((o) => o.leaseToken),
        outcomes.map((o) => (o.result === 'retry' || o.result === 'deferred' ? 'pending' : o.result)),
        outcomes.map((o) => (o.result === 'sent' || o.result === 'deferred' ? null : o.error)),
        outcomes.map((o) => (o.result === 'retry' || o.result === 'deferred' ? o.nextAttemptAt.toISOString() : null)),
        outcomes.map((o) => JSON.stringify(timelineDetail(o))),
        outcomes.map((o) => (o.result === 'skipped' ? o.reason : null)),
        outcomes.map((o) => o.result === 'deferred'),
      ],
    );
    const recorded = new Set(done.map((d) => d.id));
    return outcomes.map((o) => recorded.has(o.deliveryId));
  }

  async completeInApp(completions: readonly InAppCompletion[]): Promise<(InAppAppended | null)[]> {
    if (!completions.length) return [];
    // One statement (it commits by itself): migrations/0014_inbox_aggregation.sql.
    const rows = await this.sql.query<{
      id: string;
      seq: number;
      group_count: number | null;
      replaces: number | null;
      folded: boolean;
      unread: number;
    }>(
      `SELECT * FROM herald_complete_in_app($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::text[],
                                            $7::float8[])`,
      [
        completions.map((c) => c.deliveryId),
        completions.map((c) => c.leaseToken),
        completions.map((c) => c.title),
        completions.map((c) => c.body),
        completions.map((c) => (c.detail ? JSON.stringify(c.detail) : null)),
        completions.map((c) => c.groupKey ?? null),
        completions.map((c) => (c.groupKey != null ? (c.groupWindowMs ?? null) : null)),
      ],
    );
    const done = new Map<string, InAppAppended>();
    for (const r of rows) {
      done.set(
        r.id,
        r.group_count === null
          ? { seq: Number(r.seq) }
          : {
              seq: Number(r.seq),
              group: {
                count: r.group_count,
                replaces: r.replaces === null ? null : Number(r.replaces),
                folded: r.folded,
                unreadCount: Number(r.unread),
              },
            },
      );
    }
    return completions.map((c) => done.get(c.deliveryId) ?? null);
  }

  async reclaimExpired(limit: number, options: { unexpired?: boolean } = {}): Promise<{ id: string; lane: Lane }[]> {
    return this.sql.transaction(async (tx) => {
      const rows = await tx.query<{
        id: string;
        lane: Lane;
        notification_id: string;
        user_id: string;
        channel: string;
      }>(
        `UPDATE deliveries SET state = 'pending', lease_token = NULL, lease_until = NULL, next_attempt_at = now(), updated_at = now()
         WHERE id IN (SELECT id FROM deliveries WHERE state = 'processing' AND (lease_until < now() OR $2)
                      ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
           AND state = 'processing' AND (lease_until < now() OR $2)
         RETURNING id, lane, notification_id, user_id, channel`,
        [limit, options.unexpired === true],
      );
      if (rows.length) {
        await tx.query(
          `INSERT INTO timeline (notification_id, delivery_id, event, detail)
           SELECT nid, did, 'lease_expired', jsonb_build_object('userId', uid, 'channel', ch)
           FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS u(nid, did, uid, ch)`,
          [
            rows.map((r) => r.notification_id),
            rows.map((r) => r.id),
            rows.map((r) => r.user_id),
            rows.map((r) => r.channel),
          ],
        );
      }
      return rows.map((r) => ({ id: r.id, lane: r.lane }));
    });
  }

  async findOverdue(
    dueBefore: Date,
    limit: number,
    options: { lane?: Lane; dueAfter?: Date } = {},
  ): Promise<{ id: string; lane: Lane; runAt: Date }[]> {
    // By lane: deliveries_due (lane, next_attempt_at) WHERE state = 'pending' is the plan.
    const rows = await this.sql.query<{ id: string; lane: Lane; next_attempt_at: Date }>(
      `SELECT id, lane, next_attempt_at FROM deliveries
       WHERE state = 'pending' AND next_attempt_at < $1 AND ($3::text IS NULL OR lane = $3)
         AND ($4::timestamptz IS NULL OR next_attempt_at > $4)
       ORDER BY next_attempt_at LIMIT $2`,
      [dueBefore.toISOString(), limit, options.lane ?? null, options.dueAfter?.toISOString() ?? null],
    );
    return rows.map((r) => ({ id: r.id, lane: r.lane, runAt: r.next_attempt_at }));
  }

  async stillPending(ids: readonly string[]): Promise<{ id: string; lane: Lane; runAt: Date }[]> {
    if (!ids.length) return [];
    // A plain read: a row another taker has locked is still read (as it was before that taker's commit).
    const rows = await this.sql.query<{ id: string; lane: Lane; next_attempt_at: Date }>(
      `SELECT id, lane, next_attempt_at FROM deliveries WHERE id = ANY($1::uuid[]) AND state = 'pending'`,
      [ids],
    );
    return rows.map((r) => ({ id: r.id, lane: r.lane, runAt: r.next_attempt_at }));
  }

  async listDeadLetters(options: { limit: number; cursor?: string | null }): Promise<{
    items: DeadLetter[];
    nextCursor: string | null;
  }> {
    const c = decodeCursor(options.cursor);
    // A cursor Herald did not issue counts as none (as an undecodable one does) rather than reaching SQL.
    const [at, id] = c && isCursorTime(c[0]) && typeof c[1] === 'string' && UUID_RE.test(c[1]) ? c : [null, null];
    const rows = await this.sql.query<{
      id: string;
      notification_id: string;
      user_id: string;
      channel: DeadLetter['channel'];
      state: DeadLetter['status'];
      attempts: number;
      last_error: string | null;
      updated_at: Date;
      cursor_at: string;
    }>(
      // The cursor keeps updated_at to the microsecond (a JS Date would round it to the millisecond, and
      // the next page would then start again at rows already seen).
      `SELECT id, notification_id, user_id, channel, state, attempts, last_error, updated_at,
              to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at
       FROM deliveries
       WHERE state IN ('failed', 'dead') AND ($1::timestamptz IS NULL OR (updated_at, id) > ($1::timestamptz, $2::uuid))
       ORDER BY updated_at, id LIMIT $3`,
      [at, id, options.limit + 1],
    );
    const page = rows.slice(0, options.limit);
    const last = page[page.length - 1];
    return {
      items: page.map((r) => ({
        id: r.id,
        notificationId: r.notification_id,
        userId: r.user_id,
        channel: r.channel,
        status: r.state,
        attempts: r.attempts,
        lastError: r.last_error,
        updatedAt: r.updated_at,
      })),
      nextCursor: rows.length > options.limit && last ? encodeCursor([last.cursor_at, last.id]) : null,
    };
  }

  async siblingInAppState(delivery: {
    id: string;
    notificationId: string;
    userId: string;
  }): Promise<DeliveryState | null> {
    // The deliveries of one user in one notification have consecutive ids (insertNotifications
    // makes them one after the other; UUIDv7 grows strictly within a process), so the in-app one is
    // among the at most CHANNELS.length - 1 on either side of `delivery` in the notification's index:
    // two short range scans of deliveries_by_notification, not a scan of every recipient.
    const [row] = await this.sql.query<{ state: DeliveryState }>(
      `SELECT d.state FROM (
         (SELECT user_id, channel, state FROM deliveries WHERE notification_id = $1 AND id < $2
          ORDER BY notification_id DESC, id DESC LIMIT $4)
         UNION ALL
         (SELECT user_id, channel, state FROM deliveries WHERE notification_id = $1 AND id > $2
          ORDER BY notification_id, id LIMIT $4)) d
       WHERE d.user_id = $3 AND d.channel = 'in_app' LIMIT 1`,
      [delivery.notificationId, delivery.id, delivery.userId, CHANNELS.length - 1],
    );
    return row?.state ?? null;
  }

  async replay(id: string): Promise<{ result: 'replayed'; lane: Lane } | { result: 'not_found' | 'not_replayable' }> {
    if (!UUID_RE.test(id)) return { result: 'not_found' };
    return this.sql.transaction(async (tx) => {
      const [row] = await tx.query<{ lane: Lane; notification_id: string; user_id: string; channel: string }>(
        `UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
         WHERE id = $1 AND state IN ('failed', 'dead') RETURNING lane, notification_id, user_id, channel`,
        [id],
      );
      if (!row) {
        const exists = await tx.query('SELECT 1 FROM deliveries WHERE id = $1', [id]);
        return { result: exists.length ? 'not_replayable' : 'not_found' };
      }
      await tx.query(
        `INSERT INTO timeline (notification_id, delivery_id, event, detail) VALUES ($1, $2, 'replayed', $3)`,
        [row.notification_id, id, JSON.stringify({ userId: row.user_id, channel: row.channel })],
      );
      return { result: 'replayed', lane: row.lane };
    });
  }
}

/** A timestamp as the dead-letter cursor writes it (microseconds, UTC) that is a real instant PostgreSQL accepts. */
function isCursorTime(s: unknown): s is string {
  if (typeof s !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(s)) return false;
  const ms = new Date(`${s.slice(0, 23)}Z`);
  return !Number.isNaN(ms.getTime()) && ms.getUTCFullYear() >= 1 && ms.toISOString().slice(0, 23) === s.slice(0, 23);
}

/** What an outcome adds to its timeline event (beside userId, channel and attempt). */
function timelineDetail(o: AttemptOutcome): Record<string, unknown> {
  if (o.result === 'sent') {
    return o.detail && typeof o.detail === 'object' && !Array.isArray(o.detail) ? o.detail : {};
  }
  if (o.result === 'retry') return { error: o.error, nextAttemptAt: o.nextAttemptAt.toISOString() };
  if (o.result === 'deferred') return { destination: o.destination, nextAttemptAt: o.nextAttemptAt.toISOString() };
  return o.result === 'skipped' ? { error: o.error, reason: o.reason } : { error: o.error };
}
