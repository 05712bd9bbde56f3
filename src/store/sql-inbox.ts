/**
 * The in-app inbox in SQL: reading it, and the read and delivered states. Entries are written by
 * SqlDeliveryStore.startAttempts (or completeInApp, for rendered ones), in the transaction that
 * completes their in-app delivery. An entry shows its own title and body (rendered from the
 * category's template for its user) where it has them, else the notification's.
 */
import type { InboxStore } from '../core/ports.ts';
import type { InboxItem, InboxPage, ReadSelection } from '../core/types.ts';
import { type InboxRow, toItem } from './rows.ts';
import type { Sql, SqlClient } from './sql.ts';

export class SqlInboxStore implements InboxStore {
  constructor(private readonly sql: Sql) {}

  async listInbox(
    userId: string,
    options: { limit: number; before?: number | null; unread?: boolean },
  ): Promise<InboxPage> {
    // Unread only: from the user's unread_from up (every entry below it is read; migration 0005).
    const [rows, { unreadCount }] = await Promise.all([
      this.sql.query<InboxRow>(
        `SELECT i.seq, i.read_at, n.id, n.category, n.priority, coalesce(i.title, n.title) AS title,
                coalesce(i.body, n.body) AS body, n.data, n.created_at, i.group_count,
                i.replaced[cardinality(i.replaced)] AS replaces
         FROM inbox i ${NOTIFICATION_OF_ENTRY}
         WHERE i.user_id = $1 AND ($2::bigint IS NULL OR i.seq < $2) ${options.unread ? UNREAD_ONLY : ''} ${UNEXPIRED}
         ORDER BY i.seq DESC LIMIT $3`,
        [userId, options.before ?? null, options.limit + 1],
      ),
      this.counters(this.sql, userId),
    ]);
    const items = rows.slice(0, options.limit).map(toItem);
    const last = items[items.length - 1];
    return { items, unreadCount, nextBefore: rows.length > options.limit && last ? last.seq : null };
  }

  async markRead(userId: string, selection: ReadSelection): Promise<number> {
    return this.sql.transaction(async (tx) => {
      // The counter row first, locked: no entry of the user commits while this runs (appends lock it
      // too), so the entries this transaction sees are all of them up to last_seq.
      const [c] = await tx.query<{ last_seq: number; unread: number; unread_from: number }>(
        'SELECT last_seq, unread::int, unread_from FROM inbox_counters WHERE user_id = $1 FOR UPDATE',
        [userId],
      );
      if (!c || c.unread === 0) return 0;
      const where =
        'seqs' in selection ? 'seq = ANY($3::bigint[])' : 'upToSeq' in selection ? 'seq <= $3' : '$3::int IS NULL';
      const arg = 'seqs' in selection ? selection.seqs : 'upToSeq' in selection ? selection.upToSeq : null;
      const marked = await tx.query<{ delivery_id: string }>(
        `UPDATE inbox SET read_at = now()
         WHERE user_id = $1 AND seq >= $2 AND read_at IS NULL AND ${where} RETURNING delivery_id`,
        [userId, c.unread_from, arg],
      );
      if (!marked.length) return c.unread;
      const unread = c.unread - marked.length;
      // unread_from moves to the first entry still unread. Everything up to `upToSeq` is read now,
      // so the search starts above it; each read entry is stepped over at most once, ever.
      const from = 'upToSeq' in selection ? Math.max(c.unread_from, selection.upToSeq + 1) : c.unread_from;
      await tx.query(
        `UPDATE inbox_counters SET unread = $2::bigint, unread_from = CASE
           WHEN $2::bigint = 0 THEN last_seq + 1
           ELSE coalesce((SELECT i.seq FROM inbox i WHERE i.user_id = $1 AND i.seq >= $3::bigint AND i.read_at IS NULL
                          ORDER BY i.seq LIMIT 1), last_seq + 1) END
         WHERE user_id = $1`,
        [userId, unread, from],
      );
      await lockDeliveries(
        tx,
        marked.map((m) => m.delivery_id),
      );
      await tx.query(
        `WITH d AS (
             UPDATE deliveries SET state = 'read', updated_at = now()
             WHERE id = ANY($1::uuid[]) AND state IN ('sent', 'delivered') RETURNING id, notification_id, channel)
           INSERT INTO timeline (notification_id, delivery_id, event, detail)
           SELECT notification_id, id, 'read', jsonb_build_object('userId', $2::text, 'channel', channel) FROM d`,
        [marked.map((m) => m.delivery_id), userId],
      );
      return unread;
    });
  }

  inboxState(userId: string): Promise<{ lastSeq: number; unreadCount: number }> {
    return this.counters(this.sql, userId);
  }

  async listInboxAfter(userId: string, afterSeq: number, limit: number): Promise<InboxItem[]> {
    // An aggregated item replaces, for a client that has every item up to `afterSeq`, the newest seq
    // of its chain (every seq it replaced, migration 0014) at or below `afterSeq`: the one that client
    // holds. Replaced seqs above it were never sent to the client (they are gone from the store).
    const rows = await this.sql.query<InboxRow>(
      `SELECT i.seq, i.read_at, n.id, n.category, n.priority, coalesce(i.title, n.title) AS title,
                coalesce(i.body, n.body) AS body, n.data, n.created_at, i.group_count,
                coalesce((SELECT max(r) FROM unnest(i.replaced) r WHERE r <= $2), i.replaced[cardinality(i.replaced)])
                  AS replaces
       FROM inbox i ${NOTIFICATION_OF_ENTRY}
       WHERE i.user_id = $1 AND i.seq > $2 ${UNEXPIRED} ORDER BY i.seq LIMIT $3`,
      [userId, afterSeq, limit],
    );
    return rows.map(toItem);
  }

  async markDelivered(acks: readonly { userId: string; seq: number }[]): Promise<void> {
    if (!acks.length) return;
    // One statement (it commits by itself): the entries' deliveries still `sent`, locked in id order
    // (see lockDeliveries), moved on and written to the timeline. A repeated ack, or one for an entry
    // already read, finds its delivery past `sent` and changes nothing.
    await this.sql.query(
      `WITH entries AS (
         SELECT i.delivery_id FROM unnest($1::text[], $2::bigint[]) AS a(user_id, seq)
         JOIN inbox i ON i.user_id = a.user_id AND i.seq = a.seq),
       locked AS (
         SELECT id FROM deliveries WHERE id = ANY(ARRAY(SELECT delivery_id FROM entries)) AND state = 'sent'
         ORDER BY id FOR UPDATE),
       d AS (
         UPDATE deliveries SET state = 'delivered', updated_at = now()
         WHERE id = ANY(ARRAY(SELECT id FROM locked)) AND state = 'sent'
         RETURNING id, notification_id, user_id, channel)
       INSERT INTO timeline (notification_id, delivery_id, event, detail)
       SELECT notification_id, id, 'delivered', jsonb_build_object('userId', user_id, 'channel', channel) FROM d`,
      [acks.map((a) => a.userId), acks.map((a) => a.seq)],
    );
  }

  /** The user's counter row: last seq given and unread entries (zeros before the first entry). */
  private async counters(q: SqlClient, userId: string): Promise<{ lastSeq: number; unreadCount: number }> {
    const [row] = await q.query<{ last_seq: number; unread: number }>(
      'SELECT last_seq, unread::int FROM inbox_counters WHERE user_id = $1',
      [userId],
    );
    return { lastSeq: row?.last_seq ?? 0, unreadCount: row?.unread ?? 0 };
  }
}

/**
 * Each entry's notification, looked up by id one entry at a time: notifications is partitioned by
 * day (migration 0017), and a plain join lets the planner hash every partition's rows to join a page
 * of 20 (measured: 410 buffers and ~45 ms per replay of 50, 20,000 notifications); `LIMIT 1` keeps
 * the lookup a per-entry index probe of the one partition the id falls in (run-time pruning).
 */
const NOTIFICATION_OF_ENTRY = `CROSS JOIN LATERAL (
  SELECT n.id, n.category, n.priority, n.title, n.body, n.data, n.created_at, n.expires_at
  FROM notifications n WHERE n.id = i.notification_id LIMIT 1) n`;

/**
 * Entries of notifications not expired yet: an entry leaves reads the moment its notification's
 * expires_at passes, before a retention run removes it (and takes it off the unread count).
 */
const UNEXPIRED = 'AND (n.expires_at IS NULL OR n.expires_at > now())';

/** The unread entries of user $1: those not read, from the first that may be unread (migration 0005). */
export const UNREAD_ONLY =
  'AND i.read_at IS NULL AND i.seq >= (SELECT c.unread_from FROM inbox_counters c WHERE c.user_id = $1)';

/**
 * Locks deliveries in id order before an ack or a read changes their state, so that concurrent acks
 * and reads of the same deliveries (several tabs, the HTTP endpoint) take those locks in one order.
 */
async function lockDeliveries(tx: SqlClient, ids: readonly string[]): Promise<void> {
  await tx.query('SELECT id FROM deliveries WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE', [ids]);
}
