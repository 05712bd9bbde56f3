/**
 * Bounded memory on both stores (docs/realtime.md, close code 4408): a client that stops reading
 * is closed once its send buffer passes HERALD_WS_MAX_BUFFER_BYTES instead of queueing without
 * limit; the other sockets (of the same user too) are not affected; the client reconnects with
 * `after` and receives everything it missed, in order, with no gap.
 *
 * The client stops reading by pausing its TCP socket, so the kernel buffers fill first (the
 * server's send buffer and the client's receive buffer, a few MB on Linux): the test posts enough
 * large notifications to overflow them, then resumes the client and looks at its close code.
 * Posts run 4 at a time, so on PostgreSQL a live frame can arrive ahead of the one before it; the
 * session then fills the gap from the store with a paced replay that the paused client never reads
 * out. It must be closed there too (it was not: every later frame was held behind the replay, the
 * close never came, and the test hung until its timeout).
 */
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { userToken } from './support/http.ts';
import {
  connectReady,
  expectConsecutive,
  kernelBufferBytes,
  LARGE,
  LARGE_FRAME_BYTES,
  notify,
  notifyMany,
  type RealtimeClient,
  sleep,
  waitForInboxSeq,
} from './support/ws-client.ts';

const MAX_BUFFER = 4096;

/** `p`, or a failure naming what was awaited after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

describe.each(['pglite', 'postgres'] as const)('real-time slow consumer (%s)', (store) => {
  let t: TestHerald;
  const open: RealtimeClient[] = [];

  beforeAll(async () => {
    t = await startTestHerald({ store, env: { HERALD_WS_MAX_BUFFER_BYTES: String(MAX_BUFFER) } });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await t?.stop();
  });

  async function socket(userId: string, after?: number) {
    const r = await connectReady(t.url, userToken(userId), after === undefined ? {} : { after });
    open.push(r.client);
    return r;
  }

  // Posting ~80 frames of 90 KB and reading them three times takes a few seconds alone, several
  // times that in a full suite on two cores; each wait below has its own deadline.
  it('a client that stops reading is closed with 4408 and resumes with after, losing nothing', {
    timeout: 180_000,
  }, async () => {
    const user = `slow-${store}`;
    const slow = (await socket(user)).client;
    const sameUser = (await socket(user)).client;
    const otherUser = (await socket(`${user}-other`)).client;
    const tcp = (slow.ws as unknown as { _socket: Socket })._socket;
    tcp.pause();

    // Overflow the kernel buffers by half again, then some.
    const count = Math.ceil((1.5 * kernelBufferBytes()) / LARGE_FRAME_BYTES) + 10;
    const ids = await notifyMany(t, user, count, { ...LARGE, concurrency: 4 });
    await waitForInboxSeq(t, user, count);
    // The reading socket of the same user got every one of them, live.
    expectConsecutive(await sameUser.waitForNotifications(count, 60_000), 1, count, ids);
    await sleep(200);
    expect(slow.closedWith).toBeNull(); // the close frame waits behind the data the client has not read

    tcp.resume();
    // Every wait has a deadline that says what it saw (a lost close used to show as the test's timeout).
    const closed = await within(
      slow.closed,
      30_000,
      () => `the slow socket to be closed (it got ${slow.notifications().length} of ${count} notifications)`,
    );
    expect(closed.code).toBe(4408);
    const before = slow.notifications();
    expect(before.length).toBeLessThan(count);
    if (before.length) expectConsecutive(before, 1, before.length);
    expect(before.every((n) => n.body === LARGE.body)).toBe(true);
    const lastSeen = before.length ? (before[before.length - 1]?.seq as number) : 0;
    await eventually(() => t.herald.gateway?.sockets === 2, 'the slow socket to leave the gateway', 5_000);

    // Reconnect with after: the rest, in order, no gap; together, everything exactly once.
    const { client: again, ready } = await socket(user, lastSeen);
    expect(ready).toMatchObject({ lastSeq: count, unreadCount: count });
    const rest = await again.waitForNotifications(count - lastSeen, 60_000);
    expectConsecutive(rest, lastSeen + 1, count - lastSeen);
    expectConsecutive([...before, ...rest], 1, count, ids);

    // Nobody else was affected, and everybody is served live again.
    expect(sameUser.closedWith).toBeNull();
    expect(otherUser.closedWith).toBeNull();
    const next = await notify(t, user);
    for (const c of [sameUser, again]) {
      await c.waitFor((m) => m.type === 'notification' && m.id === next && m.seq === count + 1, 'the next one');
    }
    const other = await notify(t, `${user}-other`);
    expect((await otherUser.waitForNotifications(1))[0]).toMatchObject({ id: other, seq: 1 });
  });
});
