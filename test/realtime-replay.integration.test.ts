/**
 * Resuming with `after` on both stores (docs/realtime.md, "Within one connection seqs strictly
 * increase"): a reconnecting client receives exactly what it missed, in order; notifications
 * posted while its replay runs follow the backlog with no gap and no duplicate; and a long replay
 * is paced by the socket rather than cut off as a slow consumer.
 *
 * One Herald per store (default settings); each test uses its own users.
 */
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHerald, type TestHerald } from './support/herald.ts';
import { userToken } from './support/http.ts';
import {
  connect,
  connectReady,
  expectConsecutive,
  LARGE,
  notifyMany,
  type RealtimeClient,
  seedNotifications,
  sleep,
  waitForInboxSeq,
} from './support/ws-client.ts';

/**
 * The reconnection races the live ones in several ways: connecting as the posting starts or after
 * the first few are committed, reading at once or slowly (the replay then waits for the client).
 */
const RACE_RUNS = [
  { after: 0, largeBacklog: false, pauseMs: 0 },
  { after: 10, largeBacklog: false, pauseMs: 0 },
  { after: 0, largeBacklog: true, pauseMs: 300 },
  { after: 1, largeBacklog: true, pauseMs: 300 },
  { after: 30, largeBacklog: true, pauseMs: 300 },
] as const;

describe.each(['pglite', 'postgres'] as const)('real-time replay (%s)', (store) => {
  let t: TestHerald;
  const open: RealtimeClient[] = [];

  beforeAll(async () => {
    t = await startTestHerald({ store });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await t?.stop();
  });

  function track(c: RealtimeClient): RealtimeClient {
    open.push(c);
    return c;
  }

  /** After the expected notifications, nothing more arrives (no late duplicate) and the socket is open. */
  async function expectNothingMore(client: RealtimeClient, count: number) {
    await sleep(250);
    expect(client.notifications()).toHaveLength(count);
    expect(client.closedWith).toBeNull();
  }

  it('a client that reconnects with after receives exactly what it missed, in order', async () => {
    const user = `replay-${store}-basic`;
    const first = track((await connectReady(t.url, userToken(user))).client);
    const seen = await notifyMany(t, user, 3);
    const live = await first.waitForNotifications(3);
    expectConsecutive(live, 1, 3, seen);
    const lastSeen = live[2]?.seq as number;
    await first.close();

    const missed = await notifyMany(t, user, 100);
    await waitForInboxSeq(t, user, lastSeen + 100);

    const { client, ready } = await connectReady(t.url, userToken(user), { after: lastSeen });
    track(client);
    expect(ready).toEqual({ type: 'ready', userId: user, lastSeq: lastSeen + 100, unreadCount: 103 });
    const replayed = await client.waitForNotifications(100);
    expectConsecutive(replayed, lastSeen + 1, 100, missed);
    expect(replayed.every((n) => n.readAt === null && n.category === 'test.realtime')).toBe(true);
    await expectNothingMore(client, 100);

    // after=0 replays the whole inbox; without after, nothing old is sent.
    const all = track((await connectReady(t.url, userToken(user), { after: 0 })).client);
    expectConsecutive(await all.waitForNotifications(103), 1, 103, [...seen, ...missed]);
    const fresh = track((await connectReady(t.url, userToken(user))).client);
    await expectNothingMore(all, 103);
    expect(fresh.notifications()).toHaveLength(0);
  });

  it(`notifications posted while the replay runs follow the backlog with no gap and no duplicate (${RACE_RUNS.length} runs)`, async () => {
    const user = `replay-${store}-race`;
    let lastSeen = 0;
    for (const [run, { after: wait, largeBacklog, pauseMs }] of RACE_RUNS.entries()) {
      const what = `run ${run} (${JSON.stringify(RACE_RUNS[run])})`;
      // Disconnected: 100 accumulate (committed without an HTTP request each: how they arrive does
      // not matter here; the test above posts them).
      const backlog = await seedNotifications(t, user, 100, largeBacklog ? LARGE : {});
      await waitForInboxSeq(t, user, lastSeen + 100);
      // Another tab, connected throughout, sees the live ones as they are committed.
      const watcher = track((await connectReady(t.url, userToken(user))).client);
      // Post 100 more and reconnect with after while they are being committed.
      const posting = notifyMany(t, user, 100, { concurrency: 8 });
      if (wait) await watcher.waitForNotifications(wait);
      const client = track(await connect(t.url, userToken(user), { after: lastSeen }));
      if (pauseMs) {
        // A client slow to read: the replay (larger than the kernel buffers) waits for it, and the
        // live ones committed meanwhile must be held back and sent after the backlog.
        const tcp = (client.ws as unknown as { _socket: Socket })._socket;
        tcp.pause();
        await sleep(pauseMs);
        tcp.resume();
      }
      const live = await posting;
      const ready = await client.ready();
      expect(ready.lastSeq, what).toBeGreaterThanOrEqual(lastSeen + 100 + wait);
      const got = await client.waitForNotifications(200, 30_000);
      expectConsecutive(got, lastSeen + 1, 200, [...backlog, ...live], `${what}: reconnected client`);
      expectConsecutive(await watcher.waitForNotifications(100), lastSeen + 101, 100, live, `${what}: other tab`);
      await expectNothingMore(client, 200);
      await expectNothingMore(watcher, 100);
      expect(client.messages.filter((m) => m.type !== 'notification')).toEqual([ready]);
      lastSeen += 200;
      await Promise.all([client.close(), watcher.close()]);
    }
  });

  it('a replay of 2,000 notifications is paced, not cut off as a slow consumer, while the client acks and pings', async () => {
    const user = `replay-${store}-long`;
    // Bodies of 5 KB: one page of the replay (500 entries, 2.5 MB) is far more than the default send
    // buffer limit (256 KiB), so the pongs below are written while the replay has a full buffer.
    const body = 'x'.repeat(5000);
    // Committed as the ingest does, without 2,000 HTTP requests; the worker delivers them to the inbox.
    const ids = await seedNotifications(t, user, 2000, { body });
    await waitForInboxSeq(t, user, 2000, 60_000);

    const client = track(await connect(t.url, userToken(user), { after: 0 }));
    let pings = 0;
    client.ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { type: string; seq?: number };
      if (m.type !== 'notification') return;
      client.send({ type: 'ack', seq: m.seq });
      if ((m.seq as number) % 100 === 0) {
        client.send({ type: 'ping' });
        pings++;
      }
    });
    const got = await client.waitForNotifications(2000, 60_000);
    expectConsecutive(got, 1, 2000, ids);
    expect(got.every((n) => n.body === body)).toBe(true);
    await client.waitFor(() => client.ofType('pong').length === pings, `${pings} pongs`);
    expect(client.closedWith).toBeNull();
    await expectNothingMore(client, 2000);
  });
});
