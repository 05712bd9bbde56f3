/**
 * Aggregation by groupKey over HTTP and the socket, on both stores (API.md Part 2 "Digests and
 * aggregation", docs/realtime.md "Aggregated notifications"): live frames carry count, latest and
 * replaces (then the user's unread count); the inbox lists the item once; a client that reconnects
 * with `after` gets the aggregated item once, naming the seq it holds, and never a replaced seq.
 *
 * One Herald per store (default settings); each test uses its own users.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHerald, type TestHerald } from './support/herald.ts';
import { userToken } from './support/http.ts';
import { connectReady, type RealtimeClient, sleep, waitForInboxSeq } from './support/ws-client.ts';

describe.each(['pglite', 'postgres'] as const)('aggregation on the socket and in the inbox (%s)', (store) => {
  let t: TestHerald;
  const open: RealtimeClient[] = [];

  beforeAll(async () => {
    t = await startTestHerald({ store });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await t?.stop();
  });

  /** Posts one in-app notification (grouped when `groupKey` is given) and waits until it reached the inbox at `seq`. */
  async function post(user: string, seq: number, title: string, groupKey?: string): Promise<string> {
    const r = await t.api('POST', '/v1/notifications', {
      to: [user],
      category: 'post.liked',
      channels: ['in_app'],
      title,
      body: `${title} your post`,
      data: { postId: 42 },
      ...(groupKey ? { groupKey } : {}),
    });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    await waitForInboxSeq(t, user, seq);
    return r.json.id as string;
  }

  it('live frames carry count, latest and replaces, the unread count follows, and the inbox lists the item once', async () => {
    const user = `agg-${store}-live`;
    const { client } = await connectReady(t.url, userToken(user));
    open.push(client);
    const first = await post(user, 1, 'Ann liked', 'post:42');
    const [one] = await client.waitForNotifications(1);
    expect(one).toMatchObject({ seq: 1, id: first, count: 1, latest: { id: first, title: 'Ann liked' } });
    expect(one).not.toHaveProperty('replaces');

    const second = await post(user, 2, 'Ben liked', 'post:42');
    const [, two] = await client.waitForNotifications(2);
    expect(two).toEqual({
      type: 'notification',
      seq: 2,
      id: second,
      category: 'post.liked',
      priority: 'normal',
      title: 'Ben liked',
      body: 'Ben liked your post',
      data: { postId: 42 },
      createdAt: expect.any(String),
      readAt: null,
      count: 2,
      latest: {
        id: second,
        category: 'post.liked',
        priority: 'normal',
        title: 'Ben liked',
        body: 'Ben liked your post',
        data: { postId: 42 },
        createdAt: two?.createdAt,
      },
      replaces: 1,
    });
    // The replaced item was unread: the count stays 1.
    await client.waitFor((m) => m.type === 'unread' && m.unreadCount === 1, 'unread count 1');

    const page = await t.api('GET', `/v1/users/${user}/inbox`);
    expect(page.status).toBe(200);
    expect(page.json.unreadCount).toBe(1);
    expect(
      page.json.items.map((i: { seq: number; count: number; replaces: number }) => [i.seq, i.count, i.replaces]),
    ).toEqual([[2, 2, 1]]);
    expect(page.json.items[0].latest.id).toBe(second);

    // Read, then a third like: the new item is unread again, and says so.
    const read = await t.api('POST', `/v1/users/${user}/inbox/read`, { all: true });
    expect(read.json).toEqual({ unreadCount: 0 });
    await post(user, 3, 'Cid liked', 'post:42');
    const [, , three] = await client.waitForNotifications(3);
    expect(three).toMatchObject({ seq: 3, count: 3, replaces: 2, readAt: null });
    const counts = () => client.ofType('unread').map((m) => m.unreadCount);
    await client.waitFor((m) => m.type === 'unread' && m.unreadCount === 1 && counts().includes(0), 'unread 0 then 1');
  });

  it('a client that reconnects with after gets the aggregated item once, replacing the seq it holds', async () => {
    const user = `agg-${store}-replay`;
    const first = await connectReady(t.url, userToken(user));
    open.push(first.client);
    await post(user, 1, 'Ann liked', 'post:7');
    const [held] = await first.client.waitForNotifications(1);
    expect(held).toMatchObject({ seq: 1, count: 1 });
    await first.client.close();

    // While away: the group changes twice (seq 1 → 3 → 4), a plain notification in between (seq 2).
    await post(user, 2, 'Welcome');
    await post(user, 3, 'Ben liked', 'post:7');
    const last = await post(user, 4, 'Cid liked', 'post:7');

    const { client, ready } = await connectReady(t.url, userToken(user), { after: 1 });
    open.push(client);
    expect(ready).toMatchObject({ lastSeq: 4, unreadCount: 2 });
    const replayed = await client.waitForNotifications(2);
    expect(replayed.map((n) => [n.seq, n.title, n.count ?? null, n.replaces ?? null])).toEqual([
      [2, 'Welcome', null, null],
      [4, 'Cid liked', 3, 1],
    ]);
    expect(replayed[1]?.latest.id).toBe(last);
    await sleep(250);
    expect(client.notifications()).toHaveLength(2);

    // From the start: the item once, never a replaced seq.
    const fresh = await connectReady(t.url, userToken(user), { after: 0 });
    open.push(fresh.client);
    const all = await fresh.client.waitForNotifications(2);
    expect(all.map((n) => n.seq)).toEqual([2, 4]);
    await sleep(250);
    expect(fresh.client.notifications()).toHaveLength(2);
  });
});
