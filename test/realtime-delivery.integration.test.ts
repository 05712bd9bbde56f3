/**
 * Real-time delivery on both stores (docs/realtime.md): `ready` first, live notifications to every
 * socket of their user and to nobody else, then the client's side of the protocol — `ack` makes
 * the in-app delivery `delivered`, `read` marks it read and tells every tab the new unread count
 * (as does the HTTP inbox endpoint), `ping` is answered with `pong` on that socket only.
 *
 * One Herald per store; each test uses its own users.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, userToken } from './support/http.ts';
import {
  connectReady,
  notify,
  type RealtimeClient,
  type ServerMessage,
  sleep,
  waitForInboxSeq,
} from './support/ws-client.ts';

describe.each(['pglite', 'postgres'] as const)('real-time delivery (%s)', (store) => {
  let t: TestHerald;
  const open: RealtimeClient[] = [];
  let users = 0;
  const newUser = () => `rt-${store}-${++users}`;

  beforeAll(async () => {
    t = await startTestHerald({ store });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await t?.stop();
  });

  async function socket(userId: string, token = userToken(userId)) {
    const r = await connectReady(t.url, token);
    open.push(r.client);
    return r;
  }

  async function deliveryOf(notificationId: string) {
    const r = await t.api('GET', `/v1/notifications/${notificationId}`);
    expect(r.status).toBe(200);
    expect(r.json.deliveries).toHaveLength(1);
    return { delivery: r.json.deliveries[0], timeline: r.json.timeline as { event: string }[] };
  }

  /** Waits until the delivery of `notificationId` has `status`; fails with the last state seen. */
  async function deliveryReaches(notificationId: string, status: string, timeoutMs = 10_000) {
    let last: Awaited<ReturnType<typeof deliveryOf>> | null = null;
    try {
      return await eventually(
        async () => {
          last = await deliveryOf(notificationId);
          return last.delivery.status === status ? last : null;
        },
        `the delivery of ${notificationId} to become ${status}`,
        timeoutMs,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen ${JSON.stringify(last)}`);
    }
  }

  async function inboxItem(userId: string, seq: number) {
    const r = await t.api('GET', `/v1/users/${userId}/inbox?limit=200`);
    expect(r.status).toBe(200);
    return { item: r.json.items.find((i: { seq: number }) => i.seq === seq), unreadCount: r.json.unreadCount };
  }

  it('sends ready first, then each new notification with the next seq to every socket of its user, and nothing to others', async () => {
    const a = newUser();
    const b = newUser();
    // Two notifications before A connects: ready must count them.
    await notify(t, a);
    await notify(t, a);
    await waitForInboxSeq(t, a, 2);

    // A token issued by Herald for the first socket, a token signed by the producer for the second.
    const issued = await t.api('POST', `/v1/users/${a}/tokens`, { ttlSeconds: 600 });
    expect(issued.status).toBe(201);
    const tab1 = await socket(a, issued.json.token);
    const tab2 = await socket(a);
    const other = await socket(b);
    for (const { ready } of [tab1, tab2]) {
      expect(ready).toEqual({ type: 'ready', userId: a, lastSeq: 2, unreadCount: 2 });
    }
    expect(other.ready).toEqual({ type: 'ready', userId: b, lastSeq: 0, unreadCount: 0 });

    const before = Date.now();
    const id = await notify(t, a, {
      title: 'New reply',
      body: 'Bob replied to your comment',
      data: { postId: 42, tags: ['x'] },
      category: 'comment.reply',
      priority: 'high',
    });
    const expected = {
      type: 'notification',
      seq: 3,
      id,
      category: 'comment.reply',
      priority: 'high',
      title: 'New reply',
      body: 'Bob replied to your comment',
      data: { postId: 42, tags: ['x'] },
      readAt: null,
    };
    for (const { client } of [tab1, tab2]) {
      const [n] = (await client.waitForNotifications(1)) as [ServerMessage];
      expect(n).toMatchObject(expected);
      expect(Object.keys(n).sort()).toEqual([...Object.keys(expected), 'createdAt'].sort());
      expect(Math.abs(Date.parse(n.createdAt) - before)).toBeLessThan(60_000);
      expect(client.messages[0]?.type).toBe('ready');
    }

    // The next one follows with seq 4, on both tabs, and nothing is sent twice.
    const id2 = await notify(t, a);
    for (const { client } of [tab1, tab2]) {
      const list = await client.waitForNotifications(2);
      expect(list.map((n) => [n.seq, n.id])).toEqual([
        [3, id],
        [4, id2],
      ]);
    }
    // B's socket stays silent (give a stray frame time to arrive) and A's see nothing more.
    await sleep(300);
    expect(other.client.messages).toEqual([other.ready]);
    expect(tab1.client.notifications()).toHaveLength(2);
    expect(tab2.client.notifications()).toHaveLength(2);
    expect(other.client.closedWith).toBeNull();
  });

  it('ack makes the in-app delivery delivered', async () => {
    const a = newUser();
    const { client } = await socket(a);
    // A real client acks as soon as a notification arrives.
    client.ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as ServerMessage;
      if (m.type === 'notification') client.send({ type: 'ack', seq: m.seq });
    });
    const ids = [await notify(t, a), await notify(t, a), await notify(t, a)];
    await client.waitForNotifications(3);
    for (const id of ids) {
      const d = await deliveryReaches(id, 'delivered');
      expect(d.delivery).toMatchObject({ userId: a, channel: 'in_app', status: 'delivered' });
      expect(d.timeline.map((e) => e.event)).toContain('delivered');
    }
    // Inbox entries are not read by an ack.
    const state = await inboxItem(a, 1);
    expect(state.item.readAt).toBeNull();
    expect(state.unreadCount).toBe(3);
  });

  it('read over the socket marks the entry read and tells every tab the unread count; so does the HTTP endpoint', async () => {
    const a = newUser();
    const tab1 = (await socket(a)).client;
    const tab2 = (await socket(a)).client;
    const ids = [await notify(t, a), await notify(t, a), await notify(t, a)];
    await tab1.waitForNotifications(3);
    // Read as soon as it is on screen: the outcome of the delivery may not be recorded yet.
    await tab2.waitForNotifications(3);
    tab2.send({ type: 'read', seq: 2 });
    for (const tab of [tab1, tab2]) {
      const u = await tab.waitFor((m) => m.type === 'unread', 'unread after read over the socket');
      expect(u).toEqual({ type: 'unread', unreadCount: 2 });
    }
    const read = await inboxItem(a, 2);
    expect(read.item.id).toBe(ids[1]);
    expect(Number.isNaN(Date.parse(read.item.readAt))).toBe(false);
    expect(read.unreadCount).toBe(2);
    expect((await inboxItem(a, 1)).item.readAt).toBeNull();
    const d = await deliveryReaches(ids[1] as string, 'read');
    expect(d.timeline.map((e) => e.event)).toContain('read');

    // The HTTP endpoint (here with the user's own token) pushes the new count too.
    const r = await t.api('POST', `/v1/users/${a}/inbox/read`, { seqs: [1] }, bearer(userToken(a)));
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ unreadCount: 1 });
    for (const tab of [tab1, tab2]) {
      await tab.waitFor((m) => m.type === 'unread' && m.unreadCount === 1, 'unread after the HTTP read');
      expect(tab.ofType('unread')).toEqual([
        { type: 'unread', unreadCount: 2 },
        { type: 'unread', unreadCount: 1 },
      ]);
    }
    await deliveryReaches(ids[0] as string, 'read');
    expect((await deliveryOf(ids[2] as string)).delivery.status).toBe('sent');
    const all = await t.api('POST', `/v1/users/${a}/inbox/read`, { all: true });
    expect(all.json).toEqual({ unreadCount: 0 });
    for (const tab of [tab1, tab2]) {
      await tab.waitFor((m) => m.type === 'unread' && m.unreadCount === 0, 'unread 0 after reading all');
    }
    // A later connection starts from the new count.
    const { ready } = await socket(a);
    expect(ready).toMatchObject({ lastSeq: 3, unreadCount: 0 });
  });

  it('answers ping with pong on that socket only', async () => {
    const a = newUser();
    const tab1 = (await socket(a)).client;
    const tab2 = (await socket(a)).client;
    tab1.send({ type: 'ping' });
    tab1.send({ type: 'ping' });
    await tab1.waitFor(() => tab1.ofType('pong').length === 2, 'two pongs');
    expect(tab1.messages.slice(1)).toEqual([{ type: 'pong' }, { type: 'pong' }]);
    await sleep(100);
    expect(tab2.messages.map((m) => m.type)).toEqual(['ready']);
  });
});
