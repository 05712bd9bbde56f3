/**
 * Fan-out on read, on both stores (HERALD_FANOUT_ON_READ_ABOVE=2, so a topic of 3 is "large"): the
 * topic notification writes one item and no inbox entry per subscriber; each subscriber's inbox,
 * unread count, last seq and replay then show it as an ordinary entry with the user's next seq (after
 * the entries they had), exactly once however often they look; read state is per user; a connected
 * subscriber gets it live, with the next seq; one who subscribed after acceptance never gets it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlStore } from '../src/store/store-sql.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { userToken } from './support/http.ts';
import { connectReady } from './support/ws-client.ts';

describe.each(['pglite', 'postgres'] as const)('fan-out on read (%s)', (storeKind) => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store: storeKind, env: { HERALD_FANOUT_ON_READ_ABOVE: '2' } });
  });
  afterAll(async () => {
    await t?.stop();
  });
  const sql = () => (t.herald.adapters.store as SqlStore).sql;

  it('one item, no entry per subscriber; each inbox gets it once with the next seq; read state per user', async () => {
    const p = `r-${randomUUID().slice(0, 6)}`;
    const [a, b, c, late] = [`${p}-a`, `${p}-b`, `${p}-c`, `${p}-late`];
    const topic = `topic-${p}`;
    // a already has an entry (seq 1); c is connected when the topic notification comes.
    expect((await t.api('POST', '/v1/notifications', { to: [a], category: 'direct', title: 'before' })).status).toBe(
      202,
    );
    await t.api('PUT', `/v1/topics/${topic}/subscribers`, { userIds: [a, b, c] });
    const { client, ready } = await connectReady(t.url, userToken(c));
    expect(ready.lastSeq).toBe(0);

    const post = await t.api('POST', '/v1/notifications', { to: { topic }, category: 'news', title: 'Big news' });
    expect(post.status).toBe(202);
    expect(post.json.recipients).toBeNull();
    await t.api('PUT', `/v1/topics/${topic}/subscribers`, { userIds: [late] });

    // Live to the connected subscriber, with their next seq.
    const [live] = await client.waitForNotifications(1);
    expect(live).toMatchObject({ type: 'notification', seq: 1, id: post.json.id, title: 'Big news' });
    await client.close();

    const view = await t.api('GET', `/v1/notifications/${post.json.id}`);
    expect(view.json.recipients).toBe(3);
    // The item is in every subscriber's inbox (written there when they look): counted as sent.
    expect(view.json.counts).toEqual({ sent: 3 });
    expect(view.json.timeline.find((e: { event: string }) => e.event === 'fanout_done').detail).toMatchObject({
      recipients: 3,
      inAppOnRead: true,
    });
    // Nobody else has looked: only c's entry exists (materialized for the live frame).
    const stored = async () =>
      (
        await sql().query<{ user_id: string }>('SELECT user_id FROM inbox WHERE notification_id = $1 ORDER BY 1', [
          post.json.id,
        ])
      ).map((r) => r.user_id);
    expect(await stored()).toEqual([c]);

    const inboxA = await t.api('GET', `/v1/users/${a}/inbox`);
    expect(inboxA.json.items.map((i: { seq: number; title: string }) => [i.seq, i.title])).toEqual([
      [2, 'Big news'],
      [1, 'before'],
    ]);
    expect(inboxA.json.unreadCount).toBe(2);
    // Looking again changes nothing.
    expect((await t.api('GET', `/v1/users/${a}/inbox`)).json.items).toHaveLength(2);

    // b reconnects with after=0: replay has it, as seq 1.
    const replay = await connectReady(t.url, userToken(b), { after: 0 });
    expect(replay.ready).toMatchObject({ lastSeq: 1, unreadCount: 1 });
    expect((await replay.client.waitForNotifications(1))[0]).toMatchObject({ seq: 1, id: post.json.id });
    await replay.client.close();

    // Read state per user: a reads everything, b's stays unread.
    expect((await t.api('POST', `/v1/users/${a}/inbox/read`, { all: true })).json).toEqual({ unreadCount: 0 });
    expect((await t.api('GET', `/v1/users/${b}/inbox`)).json.unreadCount).toBe(1);

    // The late subscriber never gets it, and each subscriber holds exactly one entry.
    expect((await t.api('GET', `/v1/users/${late}/inbox`)).json.items).toEqual([]);
    expect(await stored()).toEqual([a, b, c].sort());

    // New entries keep counting from there.
    await t.api('POST', '/v1/notifications', { to: [a], category: 'direct', title: 'after' });
    await eventually(async () => (await t.api('GET', `/v1/users/${a}/inbox`)).json.items[0]?.seq === 3, 'seq 3');
  });
});
