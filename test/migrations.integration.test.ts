/**
 * Migrations that move data: a database left by an earlier Herald keeps its meaning after the
 * upgrade. (Every other test runs on a database migrated from empty.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/core/ids.ts';
import { openPostgres } from '../src/store/db-postgres.ts';
import { migrate } from '../src/store/migrate.ts';
import type { Sql } from '../src/store/sql.ts';
import { openPostgresStore } from '../src/store/store-sql.ts';
import { freshPostgresUrl } from './support/databases.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** In-app notifications to `users` as Herald before migration 0004 accepted them: delivered at once. */
async function acceptBefore0004(sql: Sql, users: string[]): Promise<void> {
  const now = new Date();
  const notifications = users.map((user) => ({
    n: { id: uuidv7(), category: 'c', priority: 'normal', channels: ['in_app'], recipients: 1, created_at: now },
    d: { id: uuidv7(), user_id: user, channel: 'in_app', lane: 'normal', next_attempt_at: now },
  }));
  await sql.query('SELECT * FROM herald_accept($1::json, $2::json, $3::uuid[])', [
    JSON.stringify(notifications.map((x) => x.n)),
    JSON.stringify(notifications.map((x) => ({ ...x.d, notification_id: x.n.id }))),
    notifications.map((x) => x.d.id),
  ]);
}

describe('migration 0004 (unread counts on the counter row)', () => {
  it('counts the unread entries a user already had, and goes on from there', async () => {
    const db = await freshPostgresUrl();
    cleanups.push(db.drop);
    const old = await openPostgres(db.url, 2);
    await migrate(old, 3);
    await acceptBefore0004(old, ['ann', 'ann', 'ann', 'bob', 'cid']);
    await old.query(`UPDATE inbox SET read_at = now() WHERE (user_id = 'ann' AND seq = 2) OR user_id = 'cid'`);
    await old.close();

    const store = await openPostgresStore(db.url, 2);
    cleanups.push(() => store.close());
    expect(await store.inboxState('ann')).toEqual({ lastSeq: 3, unreadCount: 2 });
    expect(await store.inboxState('bob')).toEqual({ lastSeq: 1, unreadCount: 1 });
    expect(await store.inboxState('cid')).toEqual({ lastSeq: 1, unreadCount: 0 });

    const now = new Date();
    const n = {
      id: uuidv7(),
      category: 'c',
      priority: 'normal',
      channels: ['in_app'],
      to: ['ann'],
      title: null,
      body: null,
      data: null,
      sendAt: null,
      groupKey: null,
      createdAt: now,
      idempotencyKey: null,
      requestHash: null,
    } as const;
    const [out] = await store.accept([{ ...n, channels: [...n.channels], to: [...n.to] }], { inAppUpTo: 1 });
    expect(out?.kind === 'accepted' && out.delivered.map((d) => d.item.seq)).toEqual([4]);
    expect(await store.inboxState('ann')).toEqual({ lastSeq: 4, unreadCount: 3 });
    expect(await store.markRead('ann', { all: true })).toBe(0);
    expect(await store.inboxState('ann')).toEqual({ lastSeq: 4, unreadCount: 0 });
  });
});

/** In-app notifications to `users` as Herald at migration 0004 accepted them: delivered at once. */
async function acceptAt0004(sql: Sql, users: string[]): Promise<void> {
  const now = new Date();
  const rows = users.map((user) => {
    const id = uuidv7();
    return {
      n: { id, category: 'c', priority: 'normal', channels: ['in_app'], recipients: 1, created_at: now },
      d: {
        id: uuidv7(),
        notification_id: id,
        user_id: user,
        channel: 'in_app',
        lane: 'normal',
        next_attempt_at: now,
        sent: true,
      },
    };
  });
  await sql.query('SELECT * FROM herald_accept($1::json, $2::json)', [
    JSON.stringify(rows.map((x) => x.n)),
    JSON.stringify(rows.map((x) => x.d)),
  ]);
}

describe('migration 0005 (unread_from)', () => {
  it('starts each user at their oldest unread entry, and unread listings stay exact', async () => {
    const db = await freshPostgresUrl();
    cleanups.push(db.drop);
    const old = await openPostgres(db.url, 2);
    await migrate(old, 4);
    await acceptAt0004(old, ['ann', 'ann', 'ann', 'ann', 'bob', 'bob']);
    // As Herald at 0004 read them: ann's 1, 2 and 4 read (3 unread), all of bob's read.
    await old.query(`UPDATE inbox SET read_at = now() WHERE (user_id = 'ann' AND seq <> 3) OR user_id = 'bob'`);
    await old.query(`UPDATE inbox_counters SET unread = CASE user_id WHEN 'ann' THEN 1 ELSE 0 END`);
    await old.close();

    const store = await openPostgresStore(db.url, 2);
    cleanups.push(() => store.close());
    const from = await store.sql.query<{ user_id: string; unread_from: number }>(
      'SELECT user_id, unread_from FROM inbox_counters ORDER BY user_id',
    );
    expect(from).toEqual([
      { user_id: 'ann', unread_from: 3 },
      { user_id: 'bob', unread_from: 3 },
    ]);
    const unreadSeqs = async (user: string) =>
      (await store.listInbox(user, { limit: 10, unread: true })).items.map((i) => i.seq);
    expect(await unreadSeqs('ann')).toEqual([3]);
    expect(await unreadSeqs('bob')).toEqual([]);
    expect(await store.markRead('ann', { seqs: [3] })).toBe(0);
    expect(await unreadSeqs('ann')).toEqual([]);
  });
});

describe('migration 0017 (partitions for retention)', () => {
  it('keeps the notifications, inbox and timeline a database already had, and their counts and seqs go on', async () => {
    const db = await freshPostgresUrl();
    cleanups.push(db.drop);
    const old = await openPostgres(db.url, 2);
    await migrate(old, 16);
    // Written two days ago (ids carry their creation time): before the migration's first day.
    const now = new Date(Date.now() - 2 * 86_400_000);
    const past = () => now.getTime().toString(16).padStart(12, '0') + uuidv7().replaceAll('-', '').slice(12);
    const asUuid = (h: string) =>
      `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    const ns = ['ann', 'ann', 'bob'].map((user) => ({ id: asUuid(past()), user, delivery: asUuid(past()) }));
    await old.query('SELECT * FROM herald_accept($1::json, $2::json)', [
      JSON.stringify(
        ns.map((n) => ({
          id: n.id,
          category: 'c',
          priority: 'normal',
          channels: ['in_app'],
          recipients: 1,
          created_at: now,
        })),
      ),
      JSON.stringify(
        ns.map((n) => ({
          id: n.delivery,
          notification_id: n.id,
          user_id: n.user,
          channel: 'in_app',
          lane: 'normal',
          next_attempt_at: now,
          sent: true,
        })),
      ),
    ]);
    await old.close();

    const store = await openPostgresStore(db.url, 2);
    cleanups.push(() => store.close());
    const [legacy] = await store.sql.query<{ n: number; i: number; t: number }>(
      `SELECT (SELECT count(*)::int FROM notifications_legacy) AS n, (SELECT count(*)::int FROM inbox) AS i,
              (SELECT count(*)::int FROM timeline_legacy) AS t`,
    );
    expect(legacy).toEqual({ n: 3, i: 3, t: 3 });
    expect(await store.inboxState('ann')).toEqual({ lastSeq: 2, unreadCount: 2 });
    expect((await store.listInbox('ann', { limit: 10 })).items.map((i) => i.id)).toEqual([ns[1]?.id, ns[0]?.id]);
    expect((await store.getNotification(ns[2]?.id as string))?.timeline.map((t) => t.event)).toEqual([
      'accepted',
      'sent',
    ]);
    // The timeline's ids go on after the copied ones.
    expect(await store.markRead('ann', { seqs: [1] })).toBe(1);
    const ids = await store.sql.query<{ id: number }>('SELECT id::int FROM timeline ORDER BY id');
    expect(new Set(ids.map((r) => r.id)).size).toBe(4);

    // 40 days on, the legacy rows have outlived a 30-day default retention: the partition goes.
    const report = await store.runRetention({
      defaultRetentionMs: 30 * 86_400_000,
      now: new Date(Date.now() + 40 * 86_400_000),
    });
    expect(report.partitions.dropped).toContain('legacy');
    expect(report.removed).toMatchObject({ notifications: 3, deliveries: 3, inboxItems: 3, timelineEvents: 4 });
    expect(await store.inboxState('ann')).toEqual({ lastSeq: 2, unreadCount: 0 });
  });
});

describe('processes starting together', () => {
  it('four processes migrating one empty database at once each succeed, and every migration is applied once', async () => {
    const db = await freshPostgresUrl();
    cleanups.push(() => db.drop());
    const pools = await Promise.all([1, 2, 3, 4].map(() => openPostgres(db.url, 2)));
    cleanups.push(async () => {
      for (const p of pools) await p.close();
    });
    const applied = await Promise.all(pools.map((p) => migrate(p)));
    const all = applied.flat().sort((a, b) => a - b);
    expect(new Set(all).size).toBe(all.length);
    const rows = await (pools[0] as Sql).query<{ n: number }>('SELECT count(*)::int AS n FROM herald_migrations');
    expect(rows[0]?.n).toBe(all.length);
  });
});
