/**
 * The Store contract for aggregation by groupKey (API.md Part 2, "Digests and aggregation";
 * migration 0014), on every adapter: a user's in-app notifications with one groupKey within the
 * window are one inbox item with a count and the latest notification; it gets a new seq when it
 * changes and carries the seq it replaces, which is gone from listings and replay. Unread counts,
 * unread listings and replay after a reconnect stay right; concurrent appends end in one item.
 */
import { expect, it } from 'vitest';
import { uuidv7 } from '../src/core/ids.ts';
import type { DeliveryJob, InAppAppended, NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { forEachStore } from './support/databases.ts';

const LEASE = 60_000;
const GROUP = 'post:42:likes';

function request(overrides: Partial<NewNotification> = {}): NewNotification {
  return {
    id: uuidv7(),
    to: ['alice'],
    category: 'post.liked',
    priority: 'normal',
    channels: ['in_app'],
    title: 'New like',
    body: 'Someone liked your post',
    data: { postId: 42 },
    sendAt: null,
    groupKey: GROUP,
    createdAt: new Date(),
    idempotencyKey: null,
    requestHash: null,
    ...overrides,
  };
}

/** Accepts notifications (inline delivery allowed) and leases their in-app deliveries. */
async function acceptAndLease(store: SqlStore, ns: NewNotification[]): Promise<DeliveryJob[]> {
  const out = await store.accept(ns, { inAppUpTo: 100 });
  const ids: string[] = [];
  for (const o of out) {
    if (o.kind !== 'accepted') throw new Error('not accepted');
    expect(o.delivered).toEqual([]);
    ids.push(...o.jobs.map((j) => j.id));
  }
  const { jobs, inbox } = await store.startAttempts({ ids }, LEASE);
  expect(inbox).toEqual([]);
  return jobs.sort((a, b) => (a.deliveryId < b.deliveryId ? -1 : 1));
}

/** Completes leased in-app deliveries as a worker does (groupKey and window from the notification). */
function complete(store: SqlStore, jobs: DeliveryJob[], windowMs?: number): Promise<(InAppAppended | null)[]> {
  return store.completeInApp(
    jobs.map((j) => ({
      deliveryId: j.deliveryId,
      leaseToken: j.leaseToken,
      title: null,
      body: null,
      detail: null,
      groupKey: j.notification.groupKey,
      ...(windowMs !== undefined ? { groupWindowMs: windowMs } : {}),
    })),
  );
}

/** Accepts one notification of the group for alice and completes it; returns its append. */
async function one(store: SqlStore, overrides: Partial<NewNotification> = {}, windowMs?: number) {
  const jobs = await acceptAndLease(store, [request(overrides)]);
  const [done] = await complete(store, jobs, windowMs);
  return done as InAppAppended;
}

forEachStore('inbox aggregation by groupKey', ({ store }) => {
  it('accept leaves in-app deliveries with a groupKey to a worker; others are still completed inline', async () => {
    const [plain, grouped] = await store().accept([request({ groupKey: null }), request()], { inAppUpTo: 100 });
    expect(plain?.kind === 'accepted' && plain.delivered.length).toBe(1);
    expect(grouped?.kind === 'accepted' && [grouped.delivered.length, grouped.jobs.length]).toEqual([0, 1]);
    const rows = await store().sql.query<{ state: string; via_worker: boolean }>(
      `SELECT state, via_worker FROM deliveries WHERE channel = 'in_app' ORDER BY id`,
    );
    expect(rows).toEqual([
      { state: 'sent', via_worker: false },
      { state: 'pending', via_worker: true },
    ]);
  });

  it('several deliveries of one group for one user in one call make one item with the count and the newest notification', async () => {
    const ns = [request({ title: 'Ann liked' }), request({ title: 'Ben liked' }), request({ title: 'Cid liked' })];
    const bob = request({ to: ['bob'], title: 'for Bob' });
    const other = request({ groupKey: 'post:7:likes', title: 'other post' });
    const jobs = await acceptAndLease(store(), [...ns, bob, other]);
    const done = await complete(store(), jobs);
    const byNotification = new Map(jobs.map((j, i) => [j.notification.id, done[i]]));
    // Alice: the group's item (3 notifications, the newest heads it), then the other group's.
    expect(ns.map((n) => byNotification.get(n.id))).toEqual([
      { seq: 1, group: { count: 3, replaces: null, folded: true, unreadCount: 2 } },
      { seq: 1, group: { count: 3, replaces: null, folded: true, unreadCount: 2 } },
      { seq: 1, group: { count: 3, replaces: null, folded: false, unreadCount: 2 } },
    ]);
    expect(byNotification.get(other.id)).toEqual({
      seq: 2,
      group: { count: 1, replaces: null, folded: false, unreadCount: 2 },
    });
    expect(byNotification.get(bob.id)).toEqual({
      seq: 1,
      group: { count: 1, replaces: null, folded: false, unreadCount: 1 },
    });

    const page = await store().listInbox('alice', { limit: 10 });
    expect(page.unreadCount).toBe(2);
    expect(page.items.map((i) => [i.seq, i.title, i.count])).toEqual([
      [2, 'other post', 1],
      [1, 'Cid liked', 3],
    ]);
    const item = page.items[1];
    expect(item?.latest).toEqual({
      id: ns[2]?.id,
      category: 'post.liked',
      priority: 'normal',
      title: 'Cid liked',
      body: 'Someone liked your post',
      data: { postId: 42 },
      createdAt: ns[2]?.createdAt,
    });
    expect(item?.replaces).toBeUndefined();
    expect(await store().inboxState('alice')).toEqual({ lastSeq: 2, unreadCount: 2 });

    // Every delivery is sent, and its timeline names the item it went into.
    for (const n of ns) {
      const v = await store().getNotification(n.id);
      expect(v?.deliveries[0]?.status).toBe('sent');
      expect(v?.timeline.find((e) => e.event === 'sent')?.detail).toMatchObject({ seq: 1, count: 3, groupKey: GROUP });
    }
  });

  it('across calls the item gets a new seq and replaces the old one, which is gone from listings and replay', async () => {
    expect(await one(store(), { title: 'first' })).toEqual({
      seq: 1,
      group: { count: 1, replaces: null, folded: false, unreadCount: 1 },
    });
    // An entry without a groupKey in between keeps its own seq.
    await store().accept([request({ groupKey: null, title: 'plain' })], { inAppUpTo: 100 });
    expect(await one(store(), { title: 'second' })).toEqual({
      seq: 3,
      group: { count: 2, replaces: 1, folded: false, unreadCount: 2 },
    });

    const page = await store().listInbox('alice', { limit: 10 });
    expect(page.items.map((i) => [i.seq, i.title, i.count ?? null, i.replaces ?? null])).toEqual([
      [3, 'second', 2, 1],
      [2, 'plain', null, null],
    ]);
    expect(page.items[1]).not.toHaveProperty('latest');
    expect(page.unreadCount).toBe(2);
    expect((await store().listInboxAfter('alice', 0, 10)).map((i) => i.seq)).toEqual([2, 3]);

    expect(await one(store(), { title: 'third' })).toEqual({
      seq: 4,
      group: { count: 3, replaces: 3, folded: false, unreadCount: 2 },
    });
    // Replay gives each client the seq it holds to drop: the newest replaced one at or below its cursor.
    const replaces = async (after: number) =>
      (await store().listInboxAfter('alice', after, 10)).map((i) => [i.seq, i.replaces ?? null]);
    expect(await replaces(0)).toEqual([
      [2, null],
      [4, 3],
    ]);
    expect(await replaces(1)).toEqual([
      [2, null],
      [4, 1],
    ]);
    expect(await replaces(3)).toEqual([[4, 3]]);
    expect(await store().inboxState('alice')).toEqual({ lastSeq: 4, unreadCount: 2 });
    expect((await store().listInbox('alice', { limit: 10, unread: true })).items.map((i) => i.seq)).toEqual([4, 2]);
    const rows = await store().sql.query<{ seq: number }>('SELECT seq FROM inbox WHERE user_id = $1 ORDER BY seq', [
      'alice',
    ]);
    expect(rows.map((r) => Number(r.seq))).toEqual([2, 4]);
  });

  it('replacing a read item makes the new one unread; replacing an unread one leaves the count; a replaced seq cannot be marked read', async () => {
    await one(store());
    expect(await store().markRead('alice', { all: true })).toBe(0);
    expect((await one(store())).group?.unreadCount).toBe(1);
    expect(await store().inboxState('alice')).toEqual({ lastSeq: 2, unreadCount: 1 });
    const unread = await store().listInbox('alice', { limit: 10, unread: true });
    expect(unread.items.map((i) => [i.seq, i.count, i.readAt])).toEqual([[2, 2, null]]);

    await one(store());
    expect(await store().inboxState('alice')).toEqual({ lastSeq: 3, unreadCount: 1 });
    // Seq 2 is gone: marking it read changes nothing (the item that replaced it holds news not seen).
    expect(await store().markRead('alice', { seqs: [2] })).toBe(1);
    expect(await store().markRead('alice', { seqs: [3] })).toBe(0);
    expect((await store().listInbox('alice', { limit: 10, unread: true })).items).toEqual([]);
    // unread_from moved past the item: a new one is found again.
    await one(store());
    expect((await store().listInbox('alice', { limit: 10, unread: true })).items.map((i) => [i.seq, i.count])).toEqual([
      [4, 4],
    ]);
    expect(await store().markRead('alice', { upToSeq: 4 })).toBe(0);
  });

  it("a notification after the item's window opens a new item; the window is fixed by the item's first notification", async () => {
    const windowOf = async (seq: number) => {
      const [r] = await store().sql.query<{ ms: number }>(
        `SELECT (extract(epoch FROM group_until - created_at) * 1000)::float8 AS ms FROM inbox
         WHERE user_id = 'alice' AND seq = $1`,
        [seq],
      );
      return r?.ms;
    };
    await one(store(), {}, 7_200_000);
    expect(await windowOf(1)).toBeCloseTo(7_200_000, -3);
    // Joins, whatever its own window: the item's window is the first notification's.
    expect(await one(store(), {}, 10)).toMatchObject({ seq: 2, group: { count: 2, replaces: 1 } });
    expect(await windowOf(2)).toBeGreaterThan(7_199_000);
    // The window ends (moved into the past rather than waited for): the next one opens a new item,
    // with the default window (one hour).
    await store().sql.query(`UPDATE inbox SET group_until = now() - interval '1 millisecond' WHERE user_id = 'alice'`);
    expect(await one(store())).toEqual({ seq: 3, group: { count: 1, replaces: null, folded: false, unreadCount: 2 } });
    expect(await windowOf(3)).toBeCloseTo(3_600_000, -3);
    const page = await store().listInbox('alice', { limit: 10 });
    expect(page.items.map((i) => [i.seq, i.count, i.replaces ?? null])).toEqual([
      [3, 1, null],
      [2, 2, 1],
    ]);
    expect(page.unreadCount).toBe(2);
    // The new item is the open one now.
    expect(await one(store())).toMatchObject({ seq: 4, group: { count: 2, replaces: 3 } });
  });

  it('concurrent appends of one group for one user end in one item', async () => {
    const jobs = await acceptAndLease(store(), [request(), request(), request(), request(), request(), request()]);
    const results = (await Promise.all(jobs.map((j) => complete(store(), [j])))).flat();
    expect(results.every((r) => r !== null)).toBe(true);
    const seqs = results.map((r) => r?.seq).sort((a, b) => (a ?? 0) - (b ?? 0));
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6]);
    expect(results.map((r) => r?.group?.count).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    const page = await store().listInbox('alice', { limit: 10 });
    expect(page.items.map((i) => [i.seq, i.count, i.replaces])).toEqual([[6, 6, 5]]);
    expect(await store().inboxState('alice')).toEqual({ lastSeq: 6, unreadCount: 1 });
  });
});
