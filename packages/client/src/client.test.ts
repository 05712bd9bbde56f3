/**
 * HeraldClient against a scripted in-memory socket: the paths a real server rarely takes on
 * demand (duplicate ids, a dead socket, refused upgrades, timing of reconnects). The same
 * behaviour against a real Herald is in test/*.integration.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeraldClient } from './client.ts';
import type { ConnectionState, HeraldClientOptions, HeraldNotification, WebSocketLike } from './types.ts';

type Handler = ((event: any) => void) | null;

function fakeServer() {
  const sockets: FakeSocket[] = [];
  class FakeSocket implements WebSocketLike {
    readyState = 0;
    onopen: Handler = null;
    onmessage: Handler = null;
    onclose: Handler = null;
    onerror: Handler = null;
    readonly sent: any[] = [];
    closedWith: number | null = null;
    terminated = false;
    constructor(readonly url: string) {
      sockets.push(this);
    }
    send(data: string) {
      this.sent.push(JSON.parse(data));
    }
    close(code?: number) {
      this.closedWith = code ?? 1005;
      this.readyState = 2;
    }
    terminate() {
      this.terminated = true;
      this.readyState = 3;
    }
    // The server's side.
    get params() {
      return new URL(this.url).searchParams;
    }
    accept(ready: { userId?: string; lastSeq?: number; unreadCount?: number } = {}) {
      this.readyState = 1;
      this.onopen?.({});
      this.push({ type: 'ready', userId: 'u1', lastSeq: 0, unreadCount: 0, ...ready });
    }
    push(message: unknown) {
      this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) });
    }
    shut(code: number, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    refuse(status: number) {
      this.onerror?.({ message: `Unexpected server response: ${status}` });
      this.shut(1006);
    }
  }
  return { WebSocket: FakeSocket, sockets, last: () => sockets[sockets.length - 1] as FakeSocket };
}

function notification(seq: number, id = `n${seq}`, readAt: string | null = null) {
  return {
    type: 'notification',
    seq,
    id,
    category: 'c',
    priority: 'normal',
    title: `t${seq}`,
    body: null,
    data: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    readAt,
  };
}

function setup(options: Partial<HeraldClientOptions> = {}) {
  const server = fakeServer();
  const client = new HeraldClient({ url: 'ws://herald.test', token: 'tok', WebSocket: server.WebSocket, ...options });
  const received: HeraldNotification[] = [];
  const unread: number[] = [];
  const states: ConnectionState[] = [];
  const errors: Error[] = [];
  client.on('notification', (n) => received.push(n));
  client.on('unread', (n) => unread.push(n));
  client.on('connection', (s) => states.push(s));
  client.on('error', (e) => errors.push(e));
  return { server, client, received, unread, states, errors };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('HeraldClient (scripted socket)', () => {
  it('connects to /v1/realtime with the token, resolves connect() at ready and reports states', async () => {
    const { server, client, states } = setup({ url: 'https://herald.test/base/' });
    const connected = client.connect();
    await vi.advanceTimersByTimeAsync(0);
    const socket = server.last();
    expect(socket.url).toBe('wss://herald.test/base/v1/realtime?token=tok');
    socket.accept({ userId: 'u1', lastSeq: 7, unreadCount: 2 });
    await connected;
    expect(client.status).toBe('open');
    expect(client.lastSeq).toBe(7);
    expect(client.unreadCount).toBe(2);
    expect(states.map((s) => s.status)).toEqual(['connecting', 'open']);
    client.close();
    expect(socket.closedWith).toBe(1000);
    expect(states.at(-1)).toMatchObject({ status: 'closed', code: 1000 });
  });

  it('drops duplicates by seq and by id, acks each new notification once and counts unread', async () => {
    const { server, client, received, unread } = setup();
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    const socket = server.last();
    socket.accept({ lastSeq: 0, unreadCount: 1 });
    socket.push(notification(1));
    socket.push(notification(2, 'n2', '2026-01-01T00:00:01.000Z'));
    socket.push(notification(2)); // same seq again
    socket.push(notification(1, 'other')); // older seq
    socket.push(notification(3, 'n1')); // an id already seen under another seq
    socket.push(notification(4));
    expect(received.map((n) => n.seq)).toEqual([1, 2, 4]);
    expect(received[0]).not.toHaveProperty('type');
    expect(unread).toEqual([1, 2, 3]); // ready, +1 for seq 1 (seq 2 arrived read), +1 for seq 4
    expect(socket.sent.filter((m) => m.type === 'ack').map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(client.lastSeq).toBe(4);
    socket.push({ type: 'unread', unreadCount: 0 });
    expect(unread.at(-1)).toBe(0);
  });

  it('passes an aggregated item on with count, latest and replaces, and leaves its unread count to the server', async () => {
    const { server, client, received, unread } = setup();
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    const socket = server.last();
    socket.accept({ lastSeq: 0, unreadCount: 0 });
    const latest = { id: 'n2', category: 'c', priority: 'normal', title: 't2', body: null, data: null };
    socket.push({ ...notification(1), count: 1, latest: { ...latest, id: 'n1', title: 't1' } });
    socket.push({ ...notification(2), count: 2, latest, replaces: 1 });
    expect(received.map((n) => [n.seq, n.count, n.replaces])).toEqual([
      [1, 1, undefined],
      [2, 2, 1],
    ]);
    expect(received[1]?.latest).toMatchObject({ id: 'n2', title: 't2' });
    // +1 for the new item; none for the one replacing it (it replaced an unread one): the server says.
    expect(unread).toEqual([0, 1]);
    socket.push({ type: 'unread', unreadCount: 1 });
    expect(unread.at(-1)).toBe(1);
  });

  it('sends no acks with autoAck: false, but ack() and markRead() when asked', async () => {
    const { server, client } = setup({ autoAck: false });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    const socket = server.last();
    socket.accept();
    socket.push(notification(1));
    expect(socket.sent).toEqual([]);
    client.ack(1);
    client.markRead(1);
    expect(socket.sent).toEqual([
      { type: 'ack', seq: 1 },
      { type: 'read', seq: 1 },
    ]);
  });

  it('queues markRead() while disconnected and sends it after the next ready', async () => {
    const { server, client } = setup({ reconnect: { baseMs: 100, maxMs: 1000 } });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().accept();
    server.last().shut(1012, 'restarting');
    client.markRead(5);
    await vi.advanceTimersByTimeAsync(100);
    const second = server.last();
    expect(server.sockets).toHaveLength(2);
    expect(second.sent).toEqual([]);
    second.accept({ lastSeq: 5 });
    expect(second.sent).toEqual([{ type: 'read', seq: 5 }]);
  });

  it('resumes with after = the last seq seen, and starts from ready.lastSeq when it had none', async () => {
    const { server, client, received } = setup({ reconnect: { baseMs: 100, maxMs: 1000 } });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(server.last().params.has('after')).toBe(false);
    server.last().accept({ lastSeq: 10 });
    server.last().shut(1006);
    await vi.advanceTimersByTimeAsync(100);
    expect(server.last().params.get('after')).toBe('10');
    server.last().accept({ lastSeq: 12 });
    server.last().push(notification(11));
    server.last().push(notification(12));
    server.last().shut(4408, 'slow consumer');
    await vi.advanceTimersByTimeAsync(100);
    expect(server.last().params.get('after')).toBe('12');
    expect(received.map((n) => n.seq)).toEqual([11, 12]);
  });

  it('does not count the replayed backlog twice: ready.unreadCount already has it', async () => {
    const { server, client, unread } = setup({ after: 2 });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().accept({ lastSeq: 5, unreadCount: 3 }); // 3, 4 and 5 are unread and about to be replayed
    server.last().push(notification(3));
    server.last().push(notification(4));
    server.last().push(notification(5));
    expect(client.unreadCount).toBe(3);
    server.last().push(notification(6)); // live: new since ready
    server.last().push(notification(7, 'n7', '2026-01-01T00:00:00.000Z')); // live but already read
    expect(unread).toEqual([3, 4]);
  });

  it('resyncs on a new socket when its resume point is beyond the server history', async () => {
    const { server, client, states, received } = setup({ after: 1000 });
    const connected = client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().accept({ lastSeq: 3 });
    expect(server.last().closedWith).toBe(1000);
    expect(states.at(-1)).toMatchObject({ status: 'closed', retryInMs: 0 });
    await vi.advanceTimersByTimeAsync(0);
    expect(server.sockets).toHaveLength(2);
    expect(server.last().params.get('after')).toBe('3');
    server.last().accept({ lastSeq: 3 });
    await connected;
    server.last().push(notification(4));
    expect(received.map((n) => n.seq)).toEqual([4]);
  });

  it('starts from the `after` option', async () => {
    const { server, client } = setup({ after: 41 });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(server.last().params.get('after')).toBe('41');
  });

  it('reconnects with growing, capped, jittered delays while sockets fail before ready, and resets after ready', async () => {
    const { server, client, states } = setup({ reconnect: { baseMs: 100, maxMs: 800 } });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 6; i++) {
      server.last().shut(1006);
      await vi.advanceTimersByTimeAsync(800);
    }
    const delays = states.filter((s) => s.status === 'closed').map((s) => s.retryInMs as number);
    const ceilings = [200, 400, 800, 800, 800, 800]; // failures 1, 2, 3, … → base·2^n capped
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(ceilings[i] as number);
    });
    expect(states.filter((s) => s.status === 'connecting').map((s) => s.attempt)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    server.last().accept();
    server.last().shut(1012);
    expect(states.at(-1)).toMatchObject({ status: 'closed', code: 1012, attempt: 0 });
    expect(states.at(-1)?.retryInMs).toBeLessThan(100);
  });

  it('does not reconnect after close(), also when close() comes during the backoff', async () => {
    const { server, client } = setup({ reconnect: { baseMs: 100, maxMs: 100 } });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().accept();
    server.last().shut(1006);
    client.close();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(server.sockets).toHaveLength(1);
    expect(client.status).toBe('closed');
  });

  it('rejects a pending connect() when close() comes first', async () => {
    const { client } = setup();
    const connected = client.connect();
    client.close();
    await expect(connected).rejects.toThrow(/closed/);
  });

  it('on 4401 gets a new token from getToken() before reconnecting, and resumes', async () => {
    const getToken = vi.fn(async () => `fresh-${getToken.mock.calls.length}`);
    const { server, client } = setup({ token: 'old', getToken });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(server.last().params.get('token')).toBe('old');
    server.last().accept();
    server.last().push(notification(1));
    server.last().shut(4401, 'token expired');
    await vi.advanceTimersByTimeAsync(500);
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(server.last().params.get('token')).toBe('fresh-1');
    expect(server.last().params.get('after')).toBe('1');
  });

  it('on a 401 at the upgrade (as ws reports it) refreshes the token before the next try', async () => {
    const getToken = vi.fn(async () => 'fresh');
    const { server, client } = setup({ token: 'bad', getToken });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().refuse(401);
    await vi.advanceTimersByTimeAsync(1000);
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(server.last().params.get('token')).toBe('fresh');
  });

  it('refreshes the token after N sockets in a row closed before ready (a browser only says 1006)', async () => {
    const getToken = vi.fn(async () => `fresh-${getToken.mock.calls.length}`);
    const { server, client } = setup({ token: 'bad', getToken, refreshTokenAfterFailures: 2 });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().shut(1006);
    await vi.advanceTimersByTimeAsync(1000);
    expect(getToken).not.toHaveBeenCalled(); // one failure: could be the network
    expect(server.last().params.get('token')).toBe('bad');
    server.last().shut(1006);
    await vi.advanceTimersByTimeAsync(2000);
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(server.last().params.get('token')).toBe('fresh-1');
    server.last().accept();
    server.last().shut(1006);
    await vi.advanceTimersByTimeAsync(1000);
    expect(getToken).toHaveBeenCalledTimes(1); // it was up: the token is fine
  });

  it('gets the first token from getToken(), and a new one when the held one is about to expire', async () => {
    const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, '');
    const expired = `${b64({ alg: 'HS256' })}.${b64({ sub: 'u1', exp: Math.floor(Date.now() / 1000) - 1 })}.sig`;
    const getToken = vi.fn(async () => 'fresh');
    const { server, client } = setup({ token: expired, getToken });
    expect(client.userId).toBe('u1');
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(getToken).toHaveBeenCalledTimes(1);
    expect(server.last().params.get('token')).toBe('fresh');
  });

  it('retries with backoff when getToken() fails, reporting the error', async () => {
    let calls = 0;
    const getToken = async () => {
      calls++;
      if (calls === 1) throw new Error('auth service down');
      return 'ok';
    };
    const { server, client, errors } = setup({ token: undefined, getToken });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    expect(server.sockets).toHaveLength(0);
    expect(errors.map((e) => e.message)).toEqual(['auth service down']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(server.sockets).toHaveLength(1);
    expect(server.last().params.get('token')).toBe('ok');
  });

  it('pings every interval and drops a socket that misses 2 pongs, then reconnects', async () => {
    const { server, client, states } = setup({
      heartbeat: { intervalMs: 1000, maxMissed: 2 },
      reconnect: { baseMs: 100, maxMs: 100 },
    });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    const socket = server.last();
    socket.accept();
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.sent).toEqual([{ type: 'ping' }]);
    socket.push({ type: 'pong' });
    await vi.advanceTimersByTimeAsync(2000); // two pings, no answer
    expect(socket.sent.filter((m) => m.type === 'ping')).toHaveLength(3);
    expect(socket.terminated).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(socket.terminated).toBe(true);
    expect(states.at(-1)).toMatchObject({ status: 'closed', code: 1006 });
    await vi.advanceTimersByTimeAsync(100);
    expect(server.sockets).toHaveLength(2);
  });

  it('drops a socket that never says ready', async () => {
    const { server, client } = setup({ connectTimeoutMs: 3000, reconnect: { baseMs: 100, maxMs: 100 } });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(3000);
    expect(server.sockets[0]?.terminated).toBe(true);
    await vi.advanceTimersByTimeAsync(100);
    expect(server.sockets).toHaveLength(2);
  });

  it('reports error frames and unreadable frames without closing', async () => {
    const { server, client, errors } = setup();
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().accept();
    server.last().push({ type: 'error', code: 'bad_frame', message: 'unknown type' });
    server.last().push('not json');
    server.last().push({ type: 'presence', online: true }); // a newer type: ignored
    expect(errors.map((e) => e.name)).toEqual(['HeraldRealtimeError', 'Error']);
    expect(client.status).toBe('open');
  });

  it('keeps going when a listener throws, handing the error to error listeners', async () => {
    const { server, client, received, errors } = setup();
    client.on('notification', () => {
      throw new Error('listener bug');
    });
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().accept();
    server.last().push(notification(1));
    server.last().push(notification(2));
    expect(received).toHaveLength(2);
    expect(errors.map((e) => e.message)).toEqual(['listener bug', 'listener bug']);
    expect(server.last().sent).toHaveLength(2);
  });

  it('off() and the function on() returns remove a listener', async () => {
    const { server, client } = setup();
    const seen: number[] = [];
    const a = (n: HeraldNotification) => seen.push(n.seq);
    client.on('notification', a);
    const offB = client.on('notification', (n) => seen.push(-n.seq));
    void client.connect();
    await vi.advanceTimersByTimeAsync(0);
    server.last().accept();
    server.last().push(notification(1));
    client.off('notification', a);
    offB();
    server.last().push(notification(2));
    expect(seen).toEqual([1, -1]);
  });

  it('rejects connect() without any WebSocket, and options that cannot work', async () => {
    const client = new HeraldClient({ url: 'ws://x', token: 't' });
    if (!(globalThis as any).WebSocket) await expect(client.connect()).rejects.toThrow(/ws/);
    expect(() => new HeraldClient({ url: 'ws://x' })).toThrow(/token/);
    expect(() => new HeraldClient({ url: 'ftp://x', token: 't' })).toThrow(/ws:/);
    expect(() => new HeraldClient({ url: 'ws://x', token: 't', reconnect: { baseMs: 10, maxMs: 5 } })).toThrow();
  });
});
