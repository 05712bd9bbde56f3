/**
 * Notifications in SQL: group-committed acceptance with idempotency keys, reading with deliveries
 * and timeline, cancellation.
 */

import { type Decisions, decisionKey } from '../core/decider.ts';
import { UUID_RE, uuidv7 } from '../core/ids.ts';
import type { AcceptOptions, NotificationStore } from '../core/ports.ts';
import type {
  AcceptedAnswer,
  AcceptOutcome,
  BusJob,
  Channel,
  Decision,
  DeliveryState,
  InboxDelivery,
  NewNotification,
  NotificationView,
  TimelineEvent,
} from '../core/types.ts';
import { type DeliveryRow, decodeCursor, encodeCursor } from './rows.ts';
import type { Sql, SqlClient } from './sql.ts';
import { acceptTopicNotifications, topicInAppEntries } from './sql-topics.ts';

const IDEMPOTENCY_WINDOW_MS = 24 * 3600_000;
/** Idempotency keys deleted per statement by the purge. */
const PURGE_BATCH = 10_000;
/** Timeline events per page of a notification's view. */
const TIMELINE_PAGE = 1_000;

interface NotificationRow {
  id: string;
  category: string;
  priority: NotificationView['priority'];
  channels: NotificationView['channels'];
  steps: { channel: NotificationView['channels'][number]; after?: string; unless?: 'read' | 'delivered' }[] | null;
  title: string | null;
  body: string | null;
  data: NotificationView['data'];
  send_at: Date | null;
  group_key: string | null;
  recipients: number | null;
  created_at: Date;
  cancelled_at: Date | null;
}

/** An idempotency key as stored by the request that claimed it. */
interface PriorKey {
  notification_id: string;
  request_hash: string;
  answer: AcceptedAnswer;
}

function answerOf(n: NewNotification): AcceptedAnswer {
  const scheduled = n.sendAt !== null && n.sendAt.getTime() > n.createdAt.getTime();
  return { id: n.id, status: scheduled ? 'scheduled' : 'accepted', recipients: n.topic ? null : n.to.length };
}

export class SqlNotificationStore implements NotificationStore {
  constructor(private readonly sql: Sql) {}

  async accept(batch: readonly NewNotification[], options: AcceptOptions = {}): Promise<AcceptOutcome[]> {
    const out: AcceptOutcome[] = new Array(batch.length);
    // A key used twice in one batch: the first request owns it, the others are its retries.
    const owner = new Map<string, number>();
    const sameKeyAs = new Map<number, number>();
    const candidates: number[] = [];
    // The stored answers of keys another batch had claimed first (claimKeys).
    const priorByKey = new Map<string, PriorKey>();
    batch.forEach((n, i) => {
      const key = n.idempotencyKey;
      if (key !== null) {
        const first = owner.get(key);
        if (first !== undefined) {
          sameKeyAs.set(i, first);
          return;
        }
        owner.set(key, i);
      }
      candidates.push(i);
    });

    const upTo = options.inAppUpTo ?? 0;
    // Small in-app notifications are delivered here and now: the take a worker would do, in the same
    // statement as the insert, so the entry commits with the notification (one commit, not two).
    // (An in-app step with a delay is not due now: insertNotifications leaves it pending.)
    const inline = (n: NewNotification) => n.to.length <= upTo && n.sendAt === null && n.channels.includes('in_app');
    const insert = async (q: SqlClient, fresh: number[]) => {
      if (!fresh.length) return;
      const ns = fresh.map((i) => batch[i] as NewNotification);
      const created = await insertNotifications(q, ns, inline, options.templated, options.decisions);
      const topical = ns.filter((n) => n.topic);
      const onRead = topical.length
        ? await acceptTopicNotifications(q, topical, options.fanoutOnReadAbove ?? Infinity)
        : null;
      for (const [k, i] of fresh.entries()) {
        const c = created[k] ?? { jobs: [], delivered: [] };
        out[i] = {
          kind: 'accepted',
          answer: answerOf(batch[i] as NewNotification),
          jobs: c.jobs,
          delivered: c.delivered,
          ...(onRead?.has((batch[i] as NewNotification).id) ? { inAppOnRead: true as const } : {}),
        };
      }
    };
    if (candidates.some((i) => batch[i]?.idempotencyKey !== null || batch[i]?.topic)) {
      // Keys are claimed and the rows inserted in one transaction: a lost race inserts nothing. A topic
      // notification's fan-out job commits with it.
      await this.sql.transaction(async (tx) =>
        insert(tx, await this.claimKeys(tx, batch, candidates, out, priorByKey)),
      );
    } else {
      // Without keys the insert is one statement, atomic by itself: no BEGIN/COMMIT round trips.
      await insert(this.sql, candidates);
    }

    for (const [i, first] of sameKeyAs) {
      const a = batch[i] as NewNotification;
      const o = out[first] as AcceptOutcome;
      if (o.kind === 'conflict') {
        // The key's owner in this batch lost to a stored request: this one is judged against that
        // request, not against its batch neighbour (it may carry the stored body).
        const prior = priorByKey.get(a.idempotencyKey as string);
        out[i] =
          prior && prior.request_hash === a.requestHash
            ? { kind: 'replayed', answer: prior.answer }
            : { kind: 'conflict', existingId: o.existingId };
      } else if (a.requestHash !== (batch[first] as NewNotification).requestHash) {
        out[i] = { kind: 'conflict', existingId: o.answer.id };
      } else {
        out[i] = { kind: 'replayed', answer: o.answer };
      }
    }
    return out;
  }

  /** Claims the idempotency keys of `candidates`; fills `out` for those that lost; returns those to insert. */
  private async claimKeys(
    tx: SqlClient,
    batch: readonly NewNotification[],
    candidates: number[],
    out: AcceptOutcome[],
    priorByKey: Map<string, PriorKey>,
  ): Promise<number[]> {
    // Claimed in key order: concurrent batches (in this process or another) then lock the keys they
    // share in the same order, and wait for each other instead of deadlocking.
    const keyOf = (i: number) => batch[i]?.idempotencyKey as string;
    const keyed = candidates
      .filter((i) => batch[i]?.idempotencyKey !== null)
      .sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
    const lost = new Set<number>();
    if (keyed.length) {
      const ns = keyed.map((i) => batch[i] as NewNotification);
      const cutoff = new Date(Date.now() - IDEMPOTENCY_WINDOW_MS).toISOString();
      const claimed = await tx.query<{ key: string }>(
        `INSERT INTO idempotency_keys (key, notification_id, request_hash, answer, created_at)
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[], $5::timestamptz[])
         ON CONFLICT (key) DO UPDATE SET notification_id = EXCLUDED.notification_id, request_hash = EXCLUDED.request_hash,
           answer = EXCLUDED.answer, created_at = EXCLUDED.created_at
         WHERE idempotency_keys.created_at < $6
         RETURNING key`,
        [
          ns.map((n) => n.idempotencyKey),
          ns.map((n) => n.id),
          ns.map((n) => n.requestHash ?? ''),
          ns.map((n) => JSON.stringify(answerOf(n))),
          ns.map((n) => n.createdAt.toISOString()),
          cutoff,
        ],
      );
      const won = new Set(claimed.map((r) => r.key));
      for (const i of keyed) if (!won.has(batch[i]?.idempotencyKey as string)) lost.add(i);
      if (lost.size) {
        const rows = await tx.query<{
          key: string;
          notification_id: string;
          request_hash: string;
          answer: AcceptedAnswer;
        }>('SELECT key, notification_id, request_hash, answer FROM idempotency_keys WHERE key = ANY($1::text[])', [
          [...lost].map((i) => batch[i]?.idempotencyKey),
        ]);
        const byKey = new Map(rows.map((r) => [r.key, r]));
        for (const r of rows) priorByKey.set(r.key, r);
        for (const i of lost) {
          const n = batch[i] as NewNotification;
          const prior = byKey.get(n.idempotencyKey as string);
          if (!prior) throw new Error(`idempotency key ${n.idempotencyKey} vanished while claimed`);
          out[i] =
            prior.request_hash === n.requestHash
              ? { kind: 'replayed', answer: prior.answer }
              : { kind: 'conflict', existingId: prior.notification_id };
        }
      }
    }
    return candidates.filter((i) => !lost.has(i));
  }

  async getNotification(
    id: string,
    options: { cursor?: string | null; limit?: number; timelineCursor?: string | null } = {},
  ): Promise<NotificationView | null> {
    if (!UUID_RE.test(id)) return null;
    const limit = Math.min(Math.max(options.limit ?? 1000, 1), 1000);
    const after = decodeCursor(options.cursor)?.[0];
    // The timeline is paged by its events' ids (in the order they were written); a bad cursor reads
    // from the start, as a bad delivery cursor does.
    const eventAfter = decodeCursor(options.timelineCursor)?.[0];
    const timelineAfter = typeof eventAfter === 'number' && Number.isSafeInteger(eventAfter) ? eventAfter : null;
    // One snapshot for every read: the counts (hence the status), the deliveries and the timeline
    // then agree, even while workers change states in between the statements.
    const read = await this.sql.transaction(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const [n] = await tx.query<NotificationRow>('SELECT * FROM notifications WHERE id = $1', [id]);
      if (!n) return null;
      const counts = await tx.query<{ state: DeliveryState; n: number; started: number }>(
        `SELECT state, count(*)::int AS n, count(*) FILTER (WHERE attempts > 0)::int AS started
         FROM deliveries WHERE notification_id = $1 GROUP BY state`,
        [id],
      );
      const deliveries = await tx.query<DeliveryRow>(
        // A digested delivery is due when its digest is (its own next_attempt_at is 'infinity': no lane takes it).
        `SELECT id, notification_id, user_id, channel, state, attempts, last_error, reason, updated_at,
                CASE WHEN d.digest_id IS NULL THEN d.next_attempt_at
                     ELSE (SELECT g.window_end FROM digests g WHERE g.id = d.digest_id) END AS next_attempt_at
         FROM deliveries d WHERE notification_id = $1 AND ($2::uuid IS NULL OR id > $2::uuid) ORDER BY id LIMIT $3`,
        [id, typeof after === 'string' && UUID_RE.test(after) ? after : null, limit + 1],
      );
      const timeline = await tx.query<{
        id: string | number;
        at: Date;
        event: string;
        detail: TimelineEvent['detail'];
      }>(
        `SELECT id, at, event, detail FROM timeline WHERE notification_id = $1 AND ($2::bigint IS NULL OR id > $2::bigint)
         ORDER BY id LIMIT $3`,
        [id, timelineAfter, TIMELINE_PAGE + 1],
      );
      const topicInApp = n.channels.includes('in_app') ? await topicInAppEntries(tx, id, n.recipients) : 0;
      return { n, counts, deliveries, timeline, topicInApp };
    });
    if (!read) return null;
    const { n, counts, deliveries, timeline, topicInApp } = read;
    const page = deliveries.slice(0, limit);
    const stateCounts: NotificationView['stateCounts'] = {};
    let started = 0;
    for (const c of counts) {
      stateCounts[c.state] = c.n;
      started += c.started;
    }
    // A topic's in-app entries written without a deliveries row (ADR 14) count as sent, so that the
    // counts sum to the audience.
    if (topicInApp > 0) stateCounts.sent = (stateCounts.sent ?? 0) + topicInApp;
    // The events made from the notification itself open the first page only.
    const synthesized: TimelineEvent[] =
      timelineAfter !== null
        ? []
        : [{ at: n.created_at, event: 'accepted', detail: { recipients: n.recipients, channels: n.channels } }];
    const events = timeline.slice(0, TIMELINE_PAGE);
    if (timelineAfter === null && n.send_at && n.send_at > n.created_at) {
      synthesized.push({ at: n.created_at, event: 'scheduled', detail: { sendAt: n.send_at.toISOString() } });
    }
    return {
      id: n.id,
      category: n.category,
      priority: n.priority,
      channels: n.channels,
      steps:
        n.steps?.map((st) => ({ channel: st.channel, after: st.after ?? null, unless: st.unless ?? null })) ?? null,
      title: n.title,
      body: n.body,
      data: n.data,
      sendAt: n.send_at,
      groupKey: n.group_key,
      createdAt: n.created_at,
      cancelledAt: n.cancelled_at,
      recipients: n.recipients,
      stateCounts,
      started,
      deliveries: page.map((d) => ({
        id: d.id,
        userId: d.user_id,
        channel: d.channel,
        status: d.state,
        attempts: d.attempts,
        lastError: d.last_error,
        reason: d.reason,
        nextAttemptAt: d.state === 'pending' ? d.next_attempt_at : null,
        updatedAt: d.updated_at,
      })),
      nextCursor: deliveries.length > limit ? encodeCursor([page[page.length - 1]?.id as string]) : null,
      timeline: [...synthesized, ...events.map((t) => ({ at: t.at, event: t.event, detail: t.detail }))],
      nextTimelineCursor:
        timeline.length > TIMELINE_PAGE ? encodeCursor([Number(events[events.length - 1]?.id)]) : null,
    };
  }

  async cancel(id: string): Promise<'cancelled' | 'not_found' | 'not_cancellable'> {
    if (!UUID_RE.test(id)) return 'not_found';
    return this.sql.transaction(async (tx) => {
      const [n] = await tx.query<{ cancelled_at: Date | null }>(
        'SELECT cancelled_at FROM notifications WHERE id = $1 FOR UPDATE',
        [id],
      );
      if (!n) return 'not_found';
      if (n.cancelled_at) return 'cancelled';
      // Lock every delivery: a worker's claim (a compare-and-set on state) waits for us and then fails.
      const rows = await tx.query<{ state: DeliveryState; attempts: number }>(
        'SELECT state, attempts FROM deliveries WHERE notification_id = $1 FOR UPDATE',
        [id],
      );
      if (rows.some((r) => r.state !== 'pending' || r.attempts > 0)) return 'not_cancellable';
      // A topic's fan-out: its job row is locked by each page, so this waits for a page in progress.
      const [job] = await tx.query<{ served: string | number }>(
        'SELECT served FROM fanout_jobs WHERE notification_id = $1 FOR UPDATE',
        [id],
      );
      if (job && Number(job.served) > 0) return 'not_cancellable';
      if (job) await tx.query(`UPDATE fanout_jobs SET state = 'cancelled' WHERE notification_id = $1`, [id]);
      await tx.query(
        `UPDATE deliveries SET state = 'cancelled', updated_at = now() WHERE notification_id = $1 AND state = 'pending'`,
        [id],
      );
      await tx.query('UPDATE notifications SET cancelled_at = now() WHERE id = $1', [id]);
      await tx.query(`INSERT INTO timeline (notification_id, event, detail) VALUES ($1, 'cancelled', $2)`, [
        id,
        JSON.stringify({ deliveries: rows.length }),
      ]);
      return 'cancelled';
    });
  }

  async purgeIdempotencyKeys(olderThan: Date): Promise<number> {
    // In batches: one statement over a busy day's keys could outlast the statement timeout.
    let purged = 0;
    for (;;) {
      const [r] = await this.sql.query<{ n: number }>(
        `WITH gone AS (DELETE FROM idempotency_keys WHERE key IN (
           SELECT key FROM idempotency_keys WHERE created_at < $1 LIMIT $2) RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [olderThan.toISOString(), PURGE_BATCH],
      );
      purged += r?.n ?? 0;
      if ((r?.n ?? 0) < PURGE_BATCH) return purged;
    }
  }
}

/** The entry of an in-app delivery completed by the accepting statement (its seq comes from it). */
function sentInApp(deliveryId: string, userId: string, n: NewNotification): InboxDelivery {
  const item = {
    id: n.id,
    seq: 0,
    category: n.category,
    priority: n.priority,
    title: n.title,
    body: n.body,
    data: n.data,
    createdAt: n.createdAt,
    readAt: null,
  };
  return { deliveryId, userId, lane: n.priority, attempt: 1, item };
}

/** A delivery row with the decider's decision, for herald_accept_decided (migration 0012). */
function decidedRow(
  id: string,
  n: NewNotification,
  user: string,
  channel: Channel,
  at: Date,
  unless: string | null,
  decision: Exclude<Decision, { kind: 'worker' }>,
  viaWorker: boolean,
): object {
  const row: Record<string, unknown> = {
    id,
    notification_id: n.id,
    user_id: user,
    channel,
    lane: n.priority,
    next_attempt_at: decision.kind === 'defer' ? decision.until : at,
    state: decision.kind === 'skip' ? 'skipped' : 'pending',
    reason: decision.kind === 'digest' ? 'digested' : decision.reason,
    unless,
  };
  // A deferred in-app delivery that a worker must render or aggregate is leased when due, not completed in SQL.
  if (viaWorker && decision.kind === 'defer') row.via_worker = true;
  if (decision.kind === 'digest') {
    row.window_start = decision.windowStart;
    row.window_end = decision.windowEnd;
  }
  return row;
}

/**
 * Inserts notifications and their deliveries, and completes the in-app deliveries of those for which
 * `deliverInApp` says so (herald_accept, one statement); returns each one's deliveries still to do,
 * and those completed. In-app deliveries of `templated` categories, and of notifications with a
 * groupKey, are never completed here: they are marked `via_worker`, for a worker to render
 * (AcceptOptions.templated) or to aggregate (src/core/aggregation.ts). The rows travel as one JSON document per table: JSON.stringify is much
 * cheaper than encoding a dozen array parameters, and the server parses each document once.
 */
async function insertNotifications(
  q: SqlClient,
  ns: NewNotification[],
  deliverInApp: (n: NewNotification) => boolean,
  templated: ReadonlySet<string> | undefined,
  decisions: Decisions | undefined,
): Promise<{ jobs: BusJob[]; delivered: InboxDelivery[] }[]> {
  const notifications: object[] = [];
  const deliveries: object[] = [];
  // Rows the decider decided something about (herald_accept's third argument); empty on the fast path.
  const decided: object[] = [];
  // The entries of the in-app deliveries completed here, waiting for the seqs the statement gives them.
  const completing = new Map<string, InboxDelivery>();
  const out: { jobs: BusJob[]; delivered: InboxDelivery[] }[] = [];
  for (const n of ns) {
    notifications.push({
      id: n.id,
      category: n.category,
      priority: n.priority,
      channels: n.channels,
      // As given: the step objects, without the keys the producer left out.
      steps: n.steps?.length
        ? n.steps.map((st) => ({
            channel: st.channel,
            ...(st.after !== null ? { after: st.after } : {}),
            ...(st.unless !== null ? { unless: st.unless } : {}),
          }))
        : null,
      title: n.title,
      body: n.body,
      data: n.data,
      // Dates as text: JSON.stringify calls a Date's toJSON on a slow path (3× the time of the row).
      send_at: n.sendAt?.toISOString() ?? null,
      group_key: n.groupKey,
      // A topic's audience is counted by its fan-out (null until then).
      recipients: n.topic ? null : n.to.length,
      created_at: n.createdAt.toISOString(),
      expires_at: n.expiresAt?.toISOString() ?? null,
    });
    const runAt = n.sendAt ?? n.createdAt;
    const created = { jobs: [] as BusJob[], delivered: [] as InboxDelivery[] };
    out.push(created);
    // Rendered (a template) or aggregated (a groupKey: migration 0014): a worker completes the in-app
    // delivery (herald_complete_in_app); the SQL fast path never sees it.
    const viaWorker = n.groupKey !== null || templated?.has(n.category) === true;
    const now = !viaWorker && deliverInApp(n);
    const decisionsOf = decisions?.get(n.id);
    // Each channel's due time and condition: a step's `after` counts from the notification's due time.
    const plan = n.channels.map((channel) => {
      const step = n.steps?.find((st) => st.channel === channel);
      const at = step?.afterMs ? new Date(runAt.getTime() + step.afterMs) : runAt;
      // The due time as text once per channel, not a Date for JSON.stringify to format per row.
      const due = at.toISOString();
      return { channel, at, due, unless: step?.unless ?? null, inline: now && channel === 'in_app' && at === runAt };
    });
    // One user's deliveries get consecutive ids (uuidv7 grows strictly within this process): the
    // step gate finds a user's in-app delivery among the neighbours of another of theirs
    // (SqlDeliveryStore.inAppState).
    for (const user of n.to) {
      for (const { channel, at, due, unless, inline } of plan) {
        const id = uuidv7();
        const decision = decisionsOf?.get(decisionKey(user, channel));
        if (decision && decision.kind !== 'worker') {
          decided.push(decidedRow(id, n, user, channel, at, unless, decision, viaWorker && channel === 'in_app'));
          if (decision.kind === 'defer') created.jobs.push({ id, lane: n.priority, runAt: decision.until });
          continue;
        }
        if (inline && !decision) {
          const entry = sentInApp(id, user, n);
          completing.set(id, entry);
          created.delivered.push(entry);
        } else {
          created.jobs.push({ id, lane: n.priority, runAt: at });
        }
        const row: Record<string, unknown> = {
          id,
          notification_id: n.id,
          user_id: user,
          channel,
          lane: n.priority,
          next_attempt_at: due,
          sent: inline && !decision,
        };
        // Only a step's row carries the key (a missing key is null to herald_accept): no bytes for the rest.
        if (unless) row.unless = unless;
        // Absent (false) on the fast path: the JSON stays as it was.
        if ((viaWorker || decision) && channel === 'in_app') row.via_worker = true;
        deliveries.push(row);
      }
    }
  }
  const rows = await q.query<{ id: string; seq: string | number }>(
    'SELECT * FROM herald_accept($1::json, $2::json, $3::json)',
    [JSON.stringify(notifications), JSON.stringify(deliveries), decided.length ? JSON.stringify(decided) : null],
  );
  // One row per delivery inserted 'sent' (herald_append_inbox), with its seq.
  for (const r of rows) {
    const entry = completing.get(r.id);
    if (entry) entry.item.seq = Number(r.seq);
  }
  return out;
}
