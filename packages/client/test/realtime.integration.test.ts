/**
 * HeraldClient against a real Herald (in process, fresh store) over `/v1/realtime`, with the
 * `ws` package's WebSocket as Node 20 needs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  expectContiguous,
  issueToken,
  newUser,
  notify,
  type Recorder,
  recordClient,
  serverSessions,
  signToken,
  startHerald,
  storedInbox,
  type TestHerald,
} from './harness.ts';

let h: TestHerald;
const clients: Recorder[] = [];

beforeAll(async () => {
  h = await startHerald();
});
afterEach(() => {
  for (const r of clients.splice(0)) r.client.close();
});
afterAll(async () => {
  await h?.stop();
});

async function connected(userId: string, options: Parameters<typeof recordClient>[1] = {}): Promise<Recorder> {
  const r = recordClient(h, { token: await issueToken(h, userId), ...options });
  clients.push(r);
  await r.client.connect();
  return r;
}

const seqsOf = (r: Recorder) => r.notifications.map((n) => n.seq);
const idsOf = (r: Recorder) => r.notifications.map((n) => n.id);

describe('HeraldClient against a real Herald', () => {
  it('receives live notifications in seq order, counts them unread and acks them (delivered)', async () => {
    const user = newUser('live');
    const r = await connected(user);
    expect(r.client.status).toBe('open');
    expect(r.client.userId).toBe(user);
    const ids = await notify(h, user, 3);
    await r.received(3);
    expect(seqsOf(r)).toEqual([1, 2, 3]);
    expect(new Set(idsOf(r))).toEqual(new Set(ids));
    expect(r.notifications[0]).toMatchObject({ category: 'client.test', priority: 'normal', readAt: null });
    expect(r.unread).toEqual([0, 1, 2, 3]);
    expect(r.client.lastSeq).toBe(3);
    // autoAck: each in-app delivery becomes `delivered`.
    for (const id of ids) {
      let last: unknown = null;
      await eventually(async () => {
        const res = await h.api('GET', `/v1/notifications/${id}`);
        last = res.json;
        return res.json.deliveries?.find((d: any) => d.channel === 'in_app')?.status === 'delivered';
      }, `in-app delivery of ${id} delivered`).catch((e: Error) => {
        throw new Error(`${e.message}; last seen: ${JSON.stringify(last)}`);
      });
    }
  });

  it('after a dropped socket, notifications posted meanwhile arrive on reconnect, in order, once', async () => {
    const user = newUser('resume');
    const r = await connected(user);
    const before = await notify(h, user, 2, 'before');
    await r.received(2);

    let reconnect = () => {};
    r.client.dropConnectionForTest({ holdUntil: new Promise<void>((res) => (reconnect = res)) });
    expect(r.client.status).toBe('closed');
    const during = await notify(h, user, 5, 'during');
    await storedInbox(h, user, 7);
    expect(r.client.status).toBe('closed'); // really posted while away
    expect(r.notifications).toHaveLength(2);

    reconnect();
    await r.opened(2);
    const after = await notify(h, user, 2, 'after');
    await r.received(9);
    await new Promise((res) => setTimeout(res, 300)); // room for a stray duplicate to show up
    expect(seqsOf(r)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(new Set(idsOf(r))).toEqual(new Set([...before, ...during, ...after]));
    expect(r.unread.at(-1)).toBe(9);
    const closes = r.states.filter((s) => s.status === 'closed');
    expect(closes[0]).toMatchObject({ code: 1006 });
  });

  it('has no gap and no duplicate when the socket drops again and again while notifications stream in', async () => {
    const user = newUser('churn');
    const r = await connected(user, { reconnect: { baseMs: 100, maxMs: 1000 } });
    const posting = notify(h, user, 40, 'stream');
    let drops = 0;
    while (r.notifications.length < 40 && drops < 8) {
      await new Promise((res) => setTimeout(res, 120));
      if (r.client.status === 'open') {
        r.client.dropConnectionForTest();
        drops++;
      }
    }
    const ids = await posting;
    await r.received(40);
    await new Promise((res) => setTimeout(res, 300));
    expect(drops).toBeGreaterThanOrEqual(2);
    expect(r.notifications).toHaveLength(40);
    expect(expectContiguous(seqsOf(r))).toBeNull();
    expect(seqsOf(r)[0]).toBe(1);
    expect(new Set(idsOf(r))).toEqual(new Set(ids));
  });

  it.each([
    [1012, 'server restarting'],
    [4408, 'slow consumer'],
  ])('reconnects promptly after the server closes with %i and resumes', async (code, reason) => {
    const user = newUser(`close${code}`);
    const r = await connected(user);
    await notify(h, user, 1);
    await r.received(1);
    const sessions = serverSessions(h, user);
    expect(sessions).toHaveLength(1);
    const closedAt = Date.now();
    for (const s of sessions) s.close(code, reason);
    await r.opened(2);
    expect(Date.now() - closedAt).toBeLessThan(2000);
    expect(r.states.find((s) => s.status === 'closed')).toMatchObject({ code, reason });
    await notify(h, user, 2);
    await r.received(3);
    expect(seqsOf(r)).toEqual([1, 2, 3]);
  });

  it('when the token expires while connected (4401), gets a new one from getToken() and misses nothing', async () => {
    const user = newUser('expiry');
    let calls = 0;
    const r = recordClient(h, {
      // Outlives the client's 5 s early-refresh margin, so the first socket really uses it.
      token: await signToken(user, 7),
      getToken: async () => {
        calls++;
        return issueToken(h, user);
      },
    });
    clients.push(r);
    await r.client.connect();
    expect(calls).toBe(0);
    await notify(h, user, 1);
    await r.received(1);
    await eventually(() => r.states.some((s) => s.status === 'closed' && s.code === 4401), 'close 4401', 20_000);
    const missed = await notify(h, user, 2); // likely while it reconnects
    await r.opened(2);
    expect(calls).toBe(1);
    await r.received(3);
    expect(seqsOf(r)).toEqual([1, 2, 3]);
    expect(idsOf(r).slice(1).sort()).toEqual([...missed].sort());
  });

  it('when the upgrade is refused with 401, gets a new token from getToken() and connects', async () => {
    const user = newUser('refused');
    let calls = 0;
    const r = recordClient(h, {
      token: await signToken(user, 3600, 'not-the-secret-0123456789abcdef'),
      getToken: async () => {
        calls++;
        return issueToken(h, user);
      },
      reconnect: { baseMs: 100, maxMs: 1000 },
    });
    clients.push(r);
    await r.client.connect();
    expect(calls).toBe(1);
    expect(r.states.map((s) => s.status)).toEqual(['connecting', 'closed', 'connecting', 'open']);
    expect(r.errors.some((e) => /401/.test(e.message))).toBe(true);
    await notify(h, user, 1);
    await r.received(1);
  });

  it('tracks the unread count across markRead over the socket and over HTTP, in every tab', async () => {
    const user = newUser('unread');
    await notify(h, user, 2, 'old');
    await storedInbox(h, user, 2);
    const tab1 = await connected(user);
    const tab2 = await connected(user);
    expect(tab1.unread).toEqual([2]);
    await notify(h, user, 2, 'new');
    await tab1.received(2);
    await tab2.received(2);
    expect(tab1.unread).toEqual([2, 3, 4]);
    expect(tab1.client.unreadCount).toBe(4);

    tab1.client.markRead(tab1.notifications[0]!.seq);
    await eventually(() => tab1.unread.at(-1) === 3 && tab2.unread.at(-1) === 3, 'unread 3 in both tabs');

    expect(await tab2.client.inbox.markRead({ all: true })).toBe(0);
    await eventually(() => tab1.unread.at(-1) === 0 && tab2.unread.at(-1) === 0, 'unread 0 in both tabs');

    const tab3 = await connected(user);
    expect(tab3.unread).toEqual([0]);
  });

  it('a resume point beyond the server history (a reset store) does not silence the client', async () => {
    const user = newUser('reset');
    const r = await connected(user, { after: 1000 });
    expect(r.client.lastSeq).toBe(0);
    expect(r.states.find((s) => s.status === 'closed')?.reason).toMatch(/resyncing/);
    await notify(h, user, 2);
    await r.received(2);
    expect(seqsOf(r)).toEqual([1, 2]);
  });

  it('resumes from the after option: a new client gets exactly what came after it', async () => {
    const user = newUser('after');
    const ids = await notify(h, user, 5);
    await storedInbox(h, user, 5);
    const r = await connected(user, { after: 2 });
    await r.received(3);
    await new Promise((res) => setTimeout(res, 200));
    expect(seqsOf(r)).toEqual([3, 4, 5]);
    expect(new Set(idsOf(r)).size).toBe(3);
    expect(ids).toEqual(expect.arrayContaining(idsOf(r)));
  });
});
