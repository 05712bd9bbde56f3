/**
 * Topics in SQL (migration 0013): subscriptions with tombstones, the subscriber count kept beside
 * them, fan-out jobs (claimed with a lease, expanded a page per transaction by herald_fanout_page)
 * and fan-out on read (herald_materialize_topics). What is promised: TopicStore (src/core/topics.ts).
 */
import { randomInt } from 'node:crypto';
import { uuidv7 } from '../core/ids.ts';
import { parseIsoDuration } from '../core/iso-duration.ts';
import type { FanoutJob, FanoutPageRequest, FanoutPageResult, TopicStore } from '../core/topics.ts';
import type { Channel, InboxEntry, JsonValue, Lane, NewNotification, Priority, StepCondition } from '../core/types.ts';
import { decodeCursor, encodeCursor } from './rows.ts';
import type { Sql, SqlClient } from './sql.ts';
import { decidedPage } from './sql-fanout-decided.ts';

/** Delivery ids of a page count up from a random start below this (ids have 48 bits there). */
const ID_START_RANGE = 2 ** 40;

export class SqlTopicStore implements TopicStore {
  constructor(private readonly sql: Sql) {}

  async subscribe(topic: string, userIds: readonly string[]): Promise<number> {
    // Rows locked in user order, then the topic's row: concurrent calls lock in one order. A tombstone
    // comes back to life with a new subscribed_at (it counts as added).
    const [r] = await this.sql.query<{ n: number }>(
      `WITH up AS (
         INSERT INTO topic_subscriptions AS s (topic, user_id, subscribed_at)
         SELECT $1, u, now() FROM unnest($2::text[]) AS u ORDER BY u
         ON CONFLICT (topic, user_id) DO UPDATE SET subscribed_at = now(), unsubscribed_at = NULL
         WHERE s.unsubscribed_at IS NOT NULL
         RETURNING 1),
       c AS (SELECT count(*)::int AS n FROM up),
       t AS (
         INSERT INTO topics AS t (name, subscribers) SELECT $1, c.n FROM c
         ON CONFLICT (name) DO UPDATE SET subscribers = t.subscribers + EXCLUDED.subscribers, updated_at = now()
         WHERE EXCLUDED.subscribers > 0)
       SELECT n FROM c`,
      [topic, userIds],
    );
    return r?.n ?? 0;
  }

  async unsubscribe(topic: string, userIds: readonly string[]): Promise<number> {
    const [r] = await this.sql.query<{ n: number }>(
      `WITH gone AS (
         UPDATE topic_subscriptions s SET unsubscribed_at = now()
         FROM (SELECT user_id FROM topic_subscriptions WHERE topic = $1 AND user_id = ANY($2::text[])
                 AND unsubscribed_at IS NULL ORDER BY user_id FOR UPDATE) x
         WHERE s.topic = $1 AND s.user_id = x.user_id AND s.unsubscribed_at IS NULL
         RETURNING 1),
       c AS (SELECT count(*)::int AS n FROM gone),
       t AS (UPDATE topics SET subscribers = subscribers - (SELECT n FROM c), updated_at = now()
             WHERE name = $1 AND (SELECT n FROM c) > 0)
       SELECT n FROM c`,
      [topic, userIds],
    );
    return r?.n ?? 0;
  }

  async listSubscribers(
    topic: string,
    options: { limit: number; cursor?: string | null },
  ): Promise<{ items: string[]; nextCursor: string | null }> {
    const after = decodeCursor(options.cursor)?.[0];
    const rows = await this.sql.query<{ user_id: string }>(
      `SELECT user_id FROM topic_subscriptions
       WHERE topic = $1 AND user_id > $2 AND unsubscribed_at IS NULL ORDER BY user_id LIMIT $3`,
      [topic, typeof after === 'string' ? after : '', options.limit + 1],
    );
    const items = rows.slice(0, options.limit).map((r) => r.user_id);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > options.limit && last !== undefined ? encodeCursor([last]) : null };
  }

  async countSubscribers(topic: string): Promise<number> {
    const [r] = await this.sql.query<{ subscribers: string | number }>(
      'SELECT subscribers FROM topics WHERE name = $1',
      [topic],
    );
    return r ? Number(r.subscribers) : 0;
  }

  async claimFanout(leaseMs: number, options: { unexpired?: boolean } = {}): Promise<FanoutJob | null> {
    const [j] = await this.sql.query<{
      notification_id: string;
      topic: string;
      lane: Lane;
      lease_token: string;
      in_app_on_read: boolean;
      after_user: string | null;
      ttl_ms: string | number | null;
    }>(
      `UPDATE fanout_jobs f SET lease_token = gen_random_uuid(),
         lease_until = now() + $1 * interval '1 millisecond', updated_at = now()
       FROM (SELECT notification_id FROM fanout_jobs
             WHERE state = 'running' AND ($2 OR lease_until IS NULL OR lease_until < now())
             ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) x
       WHERE f.notification_id = x.notification_id
       RETURNING f.notification_id, f.topic, f.lane, f.lease_token, f.in_app_on_read, f.after_user, f.ttl_ms`,
      [leaseMs, options.unexpired === true],
    );
    if (!j) return null;
    const [n] = await this.sql.query<{
      category: string;
      channels: Channel[];
      steps: { channel: Channel; after?: string; unless?: StepCondition }[] | null;
      send_at: Date | null;
      created_at: Date;
      priority: Priority;
      title: string | null;
      body: string | null;
      data: JsonValue;
      expires_at: Date | null;
    }>(
      `SELECT category, channels, steps, send_at, created_at, priority, title, body, data, expires_at
       FROM notifications WHERE id = $1`,
      [j.notification_id],
    );
    if (!n) throw new Error(`fan-out job ${j.notification_id} has no notification`);
    return {
      notificationId: j.notification_id,
      topic: j.topic,
      lane: j.lane,
      leaseToken: j.lease_token,
      inAppOnRead: j.in_app_on_read,
      afterUser: j.after_user,
      notification: {
        category: n.category,
        priority: n.priority,
        sendAt: n.send_at,
        createdAt: n.created_at,
        expiresAt: n.expires_at,
        ttlMs: j.ttl_ms === null ? null : Number(j.ttl_ms),
        channels: n.channels,
        steps: (n.steps ?? []).map((st) => {
          const after = st.after ? parseIsoDuration(st.after, Number.MAX_SAFE_INTEGER) : null;
          return { channel: st.channel, afterMs: after?.ok ? after.ms : 0, unless: st.unless ?? null };
        }),
        dueAt: n.send_at && n.send_at > n.created_at ? n.send_at : n.created_at,
        item: {
          id: j.notification_id,
          category: n.category,
          priority: n.priority,
          title: n.title,
          body: n.body,
          data: n.data,
          createdAt: n.created_at,
          readAt: null,
        },
      },
    };
  }

  async fanoutPage(job: FanoutJob, page: FanoutPageRequest): Promise<FanoutPageResult | null> {
    const plan = page.plan.map((p, i) => ({
      ord: i + 1,
      channel: p.channel,
      at: p.at,
      unless: p.unless,
      inline: p.inline,
      via_worker: p.viaWorker,
      row: p.row,
    }));
    const prefix = uuidv7().slice(0, 24);
    const start = randomInt(ID_START_RANGE);
    const d = page.decided;
    const decided = d?.decisions ? decidedPage(job, page.plan, d.users, d.decisions, prefix, start) : null;
    const rows = await this.sql.query<{
      kind: 'live' | 'job' | 'page';
      user_id: string;
      delivery_id: string;
      seq: string | number;
      run_at: Date;
      done: boolean;
    }>(
      `SELECT * FROM herald_fanout_page($1, $2, $3, $4, $5, $6::json, $7::text[], $8,
         p_users => $9::text[], p_after => $10, p_skip => $11::bigint[], p_decided => $12::json, p_lease_ms => $13)`,
      [
        job.notificationId,
        job.leaseToken,
        page.limit,
        prefix,
        start,
        JSON.stringify(plan),
        page.live,
        page.returnJobs,
        d ? d.users : null,
        d ? d.after : null,
        decided?.skip ?? null,
        decided ? JSON.stringify(decided.rows) : null,
        page.leaseMs ?? null,
      ],
    );
    const last = rows[rows.length - 1];
    if (last?.kind !== 'page') return null;
    return {
      recipients: Number(last.seq),
      checkpoint: last.user_id,
      done: last.done,
      live: rows
        .filter((r) => r.kind === 'live')
        .map((r) => ({
          deliveryId: r.delivery_id,
          userId: r.user_id,
          item: { ...job.notification.item, seq: Number(r.seq) },
        })),
      jobs: rows.filter((r) => r.kind === 'job').map((r) => ({ id: r.delivery_id, runAt: r.run_at })),
    };
  }

  async fanoutAudience(job: FanoutJob, after: string | null, limit: number): Promise<string[]> {
    const rows = await this.sql.query<{ user_id: string }>('SELECT user_id FROM herald_fanout_audience($1, $2, $3)', [
      job.notificationId,
      after,
      limit,
    ]);
    return rows.map((r) => r.user_id);
  }

  async purgeTopics(olderThan: Date): Promise<{ tombstones: number; jobs: number; items: number }> {
    return this.sql.transaction(async (tx) => {
      const count = async (text: string) => {
        const [r] = await tx.query<{ n: number }>(`WITH d AS (${text} RETURNING 1) SELECT count(*)::int AS n FROM d`, [
          olderThan,
        ]);
        return r?.n ?? 0;
      };
      // Items first: a remaining item was accepted at or after olderThan, so a user who unsubscribed
      // before olderThan was not in its audience, and their tombstone is not needed to read it.
      const items = await count('DELETE FROM topic_items WHERE cutoff < $1');
      const jobs = await count(`DELETE FROM fanout_jobs WHERE state <> 'running' AND updated_at < $1`);
      // A running job's audience includes those who unsubscribed after its cutoff.
      const tombstones = await count(
        `DELETE FROM topic_subscriptions s
         WHERE s.unsubscribed_at < $1
           AND NOT EXISTS (SELECT 1 FROM fanout_jobs j
                           WHERE j.topic = s.topic AND j.state = 'running' AND j.cutoff < s.unsubscribed_at)`,
      );
      return { tombstones, jobs, items };
    });
  }

  async materializeTopics(userIds: readonly string[]): Promise<InboxEntry[]> {
    if (!userIds.length || !(await this.anyTopicItems())) return [];
    const rows = await this.sql.query<{
      user_id: string;
      seq: string | number;
      delivery_id: string;
      id: string;
      category: string;
      priority: Priority;
      title: string | null;
      body: string | null;
      data: JsonValue;
      created_at: Date;
    }>(
      `SELECT m.user_id, m.seq, m.delivery_id, n.id, n.category, n.priority, n.title, n.body, n.data, n.created_at
       FROM herald_materialize_topics($1::text[]) m JOIN notifications n ON n.id = m.notification_id
       ORDER BY m.user_id, m.seq`,
      [userIds],
    );
    const entries = rows.map((r) => ({
      deliveryId: r.delivery_id,
      userId: r.user_id,
      item: {
        id: r.id,
        seq: Number(r.seq),
        category: r.category,
        priority: r.priority,
        title: r.title,
        body: r.body,
        data: r.data,
        createdAt: r.created_at,
        readAt: null,
      },
    }));
    if (entries.length) this.onTopicEntries?.(entries);
    return entries;
  }

  onTopicEntries: ((entries: InboxEntry[]) => void) | null = null;

  /**
   * Whether any fan-out-on-read item exists, checked at most once a second: until the first one, an
   * inbox read costs no extra statement. (An item accepted by another process is seen within a second;
   * its live subscribers get it through the accepting process's event meanwhile.)
   */
  private async anyTopicItems(): Promise<boolean> {
    if (this.itemsSeen) return true;
    const now = Date.now();
    if (now - this.itemsCheckedAt < 1_000) return false;
    this.itemsCheckedAt = now;
    const [r] = await this.sql.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM topic_items) AS any');
    this.itemsSeen = r?.any === true;
    return this.itemsSeen;
  }
  private itemsSeen = false;
  private itemsCheckedAt = 0;

  /** An item was just accepted by this process: reads materialize from now on. */
  topicItemAccepted(): void {
    this.itemsSeen = true;
  }
}

/**
 * In the accepting transaction: a fan-out job for each topic notification of `ns` (its audience: the
 * subscribers now), and for the in-app channel of a topic above `onReadAbove` subscribers one topic
 * item instead (fan-out on read); with no other channel such a notification needs no job, and its
 * recipients are the subscriber count now. Returns the ids of the notifications read on read.
 */
export async function acceptTopicNotifications(
  tx: SqlClient,
  ns: readonly NewNotification[],
  onReadAbove: number,
): Promise<Set<string>> {
  const readOnRead = new Set<string>();
  for (const n of ns) {
    const topic = n.topic as string;
    const [t] = await tx.query<{ subscribers: string | number }>('SELECT subscribers FROM topics WHERE name = $1', [
      topic,
    ]);
    const subscribers = t ? Number(t.subscribers) : 0;
    const onRead = n.channels.includes('in_app') && subscribers > onReadAbove;
    if (onRead) {
      readOnRead.add(n.id);
      await tx.query(
        `WITH t AS (UPDATE topics SET last_item = last_item + 1 WHERE name = $1 RETURNING last_item)
         INSERT INTO topic_items (topic, seq, notification_id, cutoff) SELECT $1, t.last_item, $2, now() FROM t`,
        [topic, n.id],
      );
    }
    if (onRead && n.channels.length === 1) {
      await tx.query('UPDATE notifications SET recipients = $2 WHERE id = $1', [n.id, subscribers]);
      await tx.query(`INSERT INTO timeline (notification_id, event, detail) VALUES ($1, 'fanout_done', $2)`, [
        n.id,
        JSON.stringify({ recipients: subscribers, pages: 0, inAppOnRead: true }),
      ]);
      continue;
    }
    await tx.query(
      `INSERT INTO fanout_jobs (notification_id, topic, lane, cutoff, in_app_on_read, ttl_ms)
       VALUES ($1, $2, $3, now(), $4, $5)`,
      [n.id, topic, n.priority satisfies Priority, onRead, n.ttlMs ?? null],
    );
  }
  return readOnRead;
}

/**
 * How many in-app deliveries of topic notification `id` have no deliveries row (ADR 14): on write,
 * the subscribers its pages served minus the in-app pairs the decider stored as rows; on read, the
 * whole audience (the item is in every subscriber's inbox, written there when they look). 0 for a
 * notification that is not a topic's. Two indexed reads.
 */
export async function topicInAppEntries(tx: SqlClient, id: string, recipients: number | null): Promise<number> {
  const [job] = await tx.query<{ served: string | number; in_app_on_read: boolean }>(
    'SELECT served, in_app_on_read FROM fanout_jobs WHERE notification_id = $1',
    [id],
  );
  const [item] = job ? [] : await tx.query('SELECT 1 FROM topic_items WHERE notification_id = $1 LIMIT 1', [id]);
  if (!job && !item) return 0;
  if (!job || job.in_app_on_read) return job ? Number(job.served) : (recipients ?? 0);
  const [rows] = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM deliveries WHERE notification_id = $1 AND channel = 'in_app'`,
    [id],
  );
  return Math.max(Number(job.served) - (rows?.n ?? 0), 0);
}
