/**
 * Retention (migration 0017, src/store/sql-retention.ts) on both stores: expired notifications leave
 * with their deliveries, inbox entries and timeline; unexpired ones stay; unread counts,
 * unread_from and seqs stay right; whole days are dropped as partitions and the coming days exist
 * from the moment the store opens; a notification due a year ahead is stored and kept; finished
 * digests leave once older than the default retention.
 */
import { expect, it } from 'vitest';
import { uuidv7 } from '../src/core/ids.ts';
import type { NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { forEachStore } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';

const DAY = 86_400_000;
const RETENTION = 30 * DAY;

function request(overrides: Partial<NewNotification> = {}): NewNotification {
  return newNotification({
    to: ['alice'],
    category: 'order.shipped',
    title: 'Your order shipped',
    body: 'It arrives tomorrow.',
    ...overrides,
  });
}

/** Accepts one notification, its in-app delivery completed at once (seq given); returns its id. */
async function accept(store: SqlStore, overrides: Partial<NewNotification> = {}): Promise<string> {
  const n = request(overrides);
  const [out] = await store.accept([n], { inAppUpTo: 10 });
  expect(out?.kind).toBe('accepted');
  return n.id;
}

async function expire(store: SqlStore, ids: string[], at = new Date(Date.now() - 1000)): Promise<void> {
  await store.sql.query('UPDATE notifications SET expires_at = $2 WHERE id = ANY($1::uuid[])', [ids, at.toISOString()]);
}

/** Rows about `id` in each table. */
async function rowsOf(store: SqlStore, id: string) {
  const [r] = await store.sql.query<{ n: number; d: number; i: number; t: number }>(
    `SELECT (SELECT count(*)::int FROM notifications WHERE id = $1) AS n,
            (SELECT count(*)::int FROM deliveries WHERE notification_id = $1) AS d,
            (SELECT count(*)::int FROM inbox WHERE notification_id = $1) AS i,
            (SELECT count(*)::int FROM timeline WHERE notification_id = $1) AS t`,
    [id],
  );
  return r;
}

async function counter(store: SqlStore, user: string) {
  const [c] = await store.sql.query<{ last_seq: number; unread: number; unread_from: number }>(
    'SELECT last_seq::int, unread::int, unread_from::int FROM inbox_counters WHERE user_id = $1',
    [user],
  );
  return c;
}

/** The partitions of `table` (pg_inherits), by name. */
async function partitions(store: SqlStore, table: string): Promise<string[]> {
  const rows = await store.sql.query<{ relname: string }>(
    `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
    [table],
  );
  return rows.map((r) => r.relname);
}

const dayOf = (ms: number) => `p${new Date(ms).toISOString().slice(0, 10).replaceAll('-', '')}`;

forEachStore('Retention', ({ store }) => {
  it('removes expired notifications with their deliveries, inbox entries and timeline; counts, unread_from and seqs stay right', async () => {
    const s = store();
    const n1 = await accept(s, { channels: ['in_app', 'webhook'] });
    const n2 = await accept(s);
    const n3 = await accept(s);
    const n4 = await accept(s);
    expect((await s.listInboxAfter('alice', 0, 10)).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    await s.markRead('alice', { seqs: [3] });
    expect(await counter(s, 'alice')).toEqual({ last_seq: 4, unread: 3, unread_from: 1 });

    await expire(s, [n1, n3]);
    // Gone from pages and replay at once, before any run.
    expect((await s.listInbox('alice', { limit: 10 })).items.map((e) => e.id)).toEqual([n4, n2]);
    expect((await s.listInboxAfter('alice', 0, 10)).map((e) => e.id)).toEqual([n2, n4]);
    expect((await s.listInbox('alice', { limit: 10, unread: true })).items.map((e) => e.id)).toEqual([n4, n2]);

    const report = await s.runRetention({ defaultRetentionMs: RETENTION });
    expect(report.removed).toEqual({
      notifications: 2,
      deliveries: 3,
      inboxItems: 2,
      timelineEvents: 3,
      digests: 0,
      capWindows: 0,
    });
    // Only an empty legacy partition (none of its rows live) may go; today stays.
    expect(report.partitions.dropped.filter((p) => p !== 'legacy')).toEqual([]);
    for (const id of [n1, n3]) expect(await rowsOf(s, id)).toEqual({ n: 0, d: 0, i: 0, t: 0 });
    for (const id of [n2, n4]) expect(await rowsOf(s, id)).toEqual({ n: 1, d: 1, i: 1, t: 1 });
    expect(await s.getNotification(n1)).toBeNull();
    // n1 (seq 1, unread) is gone: 2 unread left, the first of them is seq 2; seqs are not reused.
    expect(await counter(s, 'alice')).toEqual({ last_seq: 4, unread: 2, unread_from: 2 });
    expect(await s.inboxState('alice')).toEqual({ lastSeq: 4, unreadCount: 2 });

    const n5 = await accept(s);
    const after = await s.listInboxAfter('alice', 0, 10);
    expect(after.map((e) => [e.id, e.seq])).toEqual([
      [n2, 2],
      [n4, 4],
      [n5, 5],
    ]);
    expect(await s.markRead('alice', { upToSeq: 5 })).toBe(0);
    expect(await counter(s, 'alice')).toEqual({ last_seq: 5, unread: 0, unread_from: 6 });
    // A second run has nothing left to do.
    expect((await s.runRetention({ defaultRetentionMs: RETENTION })).removed).toEqual({
      notifications: 0,
      deliveries: 0,
      inboxItems: 0,
      timelineEvents: 0,
      digests: 0,
      capWindows: 0,
    });
  });

  it('drops a day whose notifications have all expired as partitions, and makes the coming days ahead', async () => {
    const s = store();
    const today = Date.now();
    // Opening the store made today and the next 7 days (those the template lacks), before any run.
    for (const t of ['notifications', 'timeline']) {
      const names = await partitions(s, t);
      for (let k = 0; k <= 7; k++) expect(names).toContain(`${t}_${dayOf(today + k * DAY)}`);
      expect(names).toContain(`${t}_default`);
    }
    // The inbox is one table: its reads by (user_id, seq) would probe every partition (ADR 0015).
    expect(await partitions(s, 'inbox')).toEqual([]);
    const a = await accept(s, { to: ['bob'], channels: ['in_app', 'webhook'] });
    const b = await accept(s, { to: ['bob'] });
    await s.markRead('bob', { seqs: [1] });
    expect(await counter(s, 'bob')).toEqual({ last_seq: 2, unread: 1, unread_from: 2 });
    const [{ n: defaulted } = { n: -1 }] = await s.sql.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM notifications_default',
    );
    expect(defaulted).toBe(0);

    // 40 days later, with a 30-day default retention: the whole day has expired.
    const later = new Date(today + 40 * DAY);
    const report = await s.runRetention({ defaultRetentionMs: RETENTION, now: later });
    expect(report.partitions.dropped).toContain(dayOf(today));
    expect(report.partitions.created).toContain(dayOf(today + 47 * DAY));
    expect(report.removed).toMatchObject({ notifications: 2, deliveries: 3, inboxItems: 2 });
    for (const t of ['notifications', 'timeline']) {
      const names = await partitions(s, t);
      expect(names).not.toContain(`${t}_${dayOf(today)}`);
      expect(names).toContain(`${t}_${dayOf(today + 47 * DAY)}`);
    }
    for (const id of [a, b]) expect(await rowsOf(s, id)).toEqual({ n: 0, d: 0, i: 0, t: 0 });
    expect(await counter(s, 'bob')).toEqual({ last_seq: 2, unread: 0, unread_from: 3 });
    // A row of a day that has no partition any more goes to the default one; its seq goes on.
    const c = await accept(s, { to: ['bob'] });
    expect((await s.listInboxAfter('bob', 0, 10)).map((e) => [e.id, e.seq])).toEqual([[c, 3]]);
    expect(await s.inboxState('bob')).toEqual({ lastSeq: 3, unreadCount: 1 });
  });

  it('keeps a notification due a year ahead, and sweeps the expired rows of its day in batches', async () => {
    const s = store();
    const today = Date.now();
    const soon = await accept(s, { to: ['cid'] });
    const sendAt = new Date(today + 365 * DAY);
    const future = await accept(s, { to: ['cid'], channels: ['in_app', 'email'], sendAt });
    await expire(s, [future], new Date(sendAt.getTime() + RETENTION));
    expect(await rowsOf(s, future)).toMatchObject({ n: 1, d: 2, i: 0 });

    const report = await s.runRetention({ defaultRetentionMs: RETENTION, now: new Date(today + 40 * DAY) });
    // The day stays (it holds a live notification); its expired one left row by row.
    expect(report.partitions.dropped).not.toContain(dayOf(today));
    expect(report.removed).toMatchObject({ notifications: 1, deliveries: 1, inboxItems: 1 });
    expect(await rowsOf(s, soon)).toEqual({ n: 0, d: 0, i: 0, t: 0 });
    expect(await rowsOf(s, future)).toMatchObject({ n: 1, d: 2 });
    expect(await counter(s, 'cid')).toEqual({ last_seq: 1, unread: 0, unread_from: 2 });
    const view = await s.getNotification(future);
    expect(view?.deliveries.map((d) => d.status)).toEqual(['pending', 'pending']);
  });

  it('deletes finished digests older than the default retention, and keeps pending ones whatever their age', async () => {
    const s = store();
    const old = new Date(Date.now() - 31 * DAY).toISOString();
    const recent = new Date(Date.now() - DAY).toISOString();
    const digests = [
      ['sent', old],
      ['failed', old],
      ['skipped', old],
      ['pending', old],
      ['processing', old],
      ['sent', recent],
    ] as const;
    for (const [k, [state, at]] of digests.entries())
      await s.sql.query(
        `INSERT INTO digests (id, user_id, category, channel, window_start, window_end, state, updated_at)
         VALUES ($1, 'dee', 'c', 'email', $2::timestamptz - interval '1 hour', $2::timestamptz, $3, $2::timestamptz)`,
        [uuidv7(), new Date(Date.parse(at) - k * 3_600_000).toISOString(), state],
      );
    const report = await s.runRetention({ defaultRetentionMs: RETENTION });
    expect(report.removed.digests).toBe(3);
    const left = await s.sql.query<{ state: string }>('SELECT state FROM digests ORDER BY state');
    expect(left.map((r) => r.state)).toEqual(['pending', 'processing', 'sent']);
  });

  it('deletes the cap counters of windows that ended over an hour ago, and keeps the others', async () => {
    const s = store();
    const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
    const windows = [
      ['long-ended', ago(3 * 3_600_000), ago(2 * 3_600_000)],
      ['just-ended', ago(40 * 60_000), ago(10 * 60_000)],
      ['current', ago(10 * 60_000), ago(-20 * 60_000)],
    ] as const;
    for (const [user, start, end] of windows)
      await s.sql.query(
        `INSERT INTO cap_counts (user_id, channel, category, window_start, window_end, n)
         VALUES ($1, 'email', 'c', $2, $3, 2)`,
        [user, start, end],
      );
    const report = await s.runRetention({ defaultRetentionMs: RETENTION });
    expect(report.removed.capWindows).toBe(1);
    const left = await s.sql.query<{ user_id: string }>('SELECT user_id FROM cap_counts ORDER BY user_id');
    expect(left.map((r) => r.user_id)).toEqual(['current', 'just-ended']);
  });
});
