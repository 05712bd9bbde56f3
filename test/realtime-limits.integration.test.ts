/**
 * The gateway's limits (docs/realtime.md, "Connecting", "Limits", "Close codes"): sockets per user
 * (HERALD_MAX_SOCKETS_PER_USER, also against concurrent upgrades), the longest token lifetime
 * (HERALD_MAX_TOKEN_TTL, on HTTP, at the upgrade and when issuing), the client frame budget,
 * `ready` first even when the client speaks first, and invalid UTF-8 (1007).
 *
 * Store-independent (all of it happens before or beside the store), so Heralds on PGlite.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_FRAMES } from '../src/core/realtime-protocol.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, expectError, nowSeconds, signJwt, userToken } from './support/http.ts';
import { clientFrame, rawConnect } from './support/raw-ws.ts';
import {
  connect,
  connectReady,
  notify,
  type RealtimeClient,
  refusedUpgrade,
  seedNotifications,
  sleep,
  waitForInboxSeq,
} from './support/ws-client.ts';

const DAY = 86_400;

/** The status and Retry-After header of an upgrade the server answers with an HTTP error. */
function refusalHeaders(baseUrl: string, token: string): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${baseUrl}/v1/realtime?token=${encodeURIComponent(token)}`, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
      },
    });
    req.on('response', (res) => {
      res.resume();
      const h = res.headers['retry-after'];
      resolve({ status: res.statusCode ?? 0, retryAfter: Array.isArray(h) ? h[0] : h });
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error('the upgrade was accepted'));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('real-time limits', () => {
  let t: TestHerald;
  const open: RealtimeClient[] = [];

  beforeAll(async () => {
    // Defaults: 64 sockets per user, tokens of at most 30 days.
    t = await startTestHerald({ store: 'pglite' });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await t?.stop();
  });

  describe('sockets per user', () => {
    it('of 100 concurrent upgrades of one user, 64 are accepted and 36 refused with 429', async () => {
      const token = userToken('crowd');
      const results = await Promise.allSettled(Array.from({ length: 100 }, () => connect(t.url, token)));
      const accepted = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      open.push(...accepted);
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
      expect(accepted).toHaveLength(64);
      expect(refused).toHaveLength(36);
      for (const reason of refused) expect(reason).toContain('HTTP 429');
      for (const c of accepted) await c.ready();
      expect((await t.api('GET', '/v1/users/crowd/presence')).json).toMatchObject({ online: true, sockets: 64 });

      // The refusal is the documented error, with Retry-After; other users are not affected.
      expectError(await refusedUpgrade(t.url, token), 'HERALD_ERR_TOO_MANY_CONNECTIONS');
      expect(await refusalHeaders(t.url, token)).toMatchObject({ status: 429, retryAfter: '1' });
      const other = (await connectReady(t.url, userToken('not-crowd'))).client;
      open.push(other);

      // Once one socket has closed, the user may open one again.
      await accepted[0]?.close();
      const again = await eventually(
        () => connect(t.url, token).catch(() => null),
        'an upgrade accepted after a close',
        5000,
      );
      open.push(again);
      await again.ready();
      expectError(await refusedUpgrade(t.url, token), 'HERALD_ERR_TOO_MANY_CONNECTIONS');
      await Promise.all(open.splice(0).map((c) => c.close()));
    });
  });

  describe('token lifetime', () => {
    const cases: [string, () => string, number][] = [
      ['exp in the year 9999', () => signJwt({ sub: 'long', exp: 253_402_300_799 }), 401],
      ['exp 30 days and 2 minutes ahead', () => signJwt({ sub: 'long', exp: nowSeconds() + 30 * DAY + 120 }), 401],
      ['exp 30 days ahead, less a minute', () => signJwt({ sub: 'long', exp: nowSeconds() + 30 * DAY - 60 }), 200],
    ];

    it.each(cases)('%s: HTTP %i', async (_name, token, status) => {
      const r = await t.api('GET', '/v1/users/long/inbox', undefined, bearer(token()));
      if (status === 401) {
        const error = expectError(r, 'HERALD_ERR_UNAUTHORIZED');
        expect(error.message).toContain('HERALD_MAX_TOKEN_TTL');
      } else expect(r.status).toBe(200);
    });

    it.each(cases)('%s: at the upgrade', async (_name, token, status) => {
      if (status === 401) expectError(await refusedUpgrade(t.url, token()), 'HERALD_ERR_UNAUTHORIZED');
      else open.push((await connectReady(t.url, token())).client);
    });

    it('POST /v1/users/{id}/tokens issues up to 30 days by default', async () => {
      const ok = await t.api('POST', '/v1/users/long/tokens', { ttlSeconds: 30 * DAY });
      expect(ok.status).toBe(201);
      expect((await t.api('GET', '/v1/users/long/inbox', undefined, bearer(ok.json.token))).status).toBe(200);
      const tooLong = await t.api('POST', '/v1/users/long/tokens', { ttlSeconds: 30 * DAY + 1 });
      expectError(tooLong, 'HERALD_ERR_VALIDATION');
    });

    it('follows HERALD_MAX_TOKEN_TTL: 10m', async () => {
      const short = await startTestHerald({ store: 'pglite', env: { HERALD_MAX_TOKEN_TTL: '10m' } });
      try {
        expectError(await short.api('POST', '/v1/users/s/tokens', { ttlSeconds: 601 }), 'HERALD_ERR_VALIDATION');
        const max = await short.api('POST', '/v1/users/s/tokens', { ttlSeconds: 600 });
        expect(max.status).toBe(201);
        // Without ttlSeconds: an hour is longer than allowed, so the maximum.
        const dflt = await short.api('POST', '/v1/users/s/tokens');
        expect(dflt.status).toBe(201);
        const lifetime = (Date.parse(dflt.json.expiresAt) - Date.now()) / 1000;
        expect(lifetime).toBeGreaterThan(540);
        expect(lifetime).toBeLessThanOrEqual(601);
        const c = (await connectReady(short.url, max.json.token)).client;
        await c.close();
        // A token of an hour, fine on the default setting, is refused here.
        const hour = signJwt({ sub: 's', exp: nowSeconds() + 3600 });
        expectError(await short.api('GET', '/v1/users/s/inbox', undefined, bearer(hour)), 'HERALD_ERR_UNAUTHORIZED');
        expectError(await refusedUpgrade(short.url, hour), 'HERALD_ERR_UNAUTHORIZED');
      } finally {
        await short.stop();
      }
    });
  });

  describe('client frames', () => {
    it(`more than ${CLIENT_FRAMES.burst} frames at once close the socket with 1008 "too many frames"`, async () => {
      const raw = await rawConnect(t.url, userToken('pinger'));
      await eventually(() => raw.messages.length > 0, 'ready');
      const pings = CLIENT_FRAMES.burst + 500;
      raw.write(Buffer.concat(Array.from({ length: pings }, () => clientFrame('{"type":"ping"}'))));
      expect(await raw.closed).toEqual({ code: 1008, reason: 'too many frames' });
      const pongs = raw.messages.filter((m) => m.type === 'pong').length;
      // The burst was served (a few more may have been refilled meanwhile), not everything.
      expect(pongs).toBeGreaterThanOrEqual(CLIENT_FRAMES.burst);
      expect(pongs).toBeLessThan(pings);
    });

    it('a client that acknowledges every notification of a long replay at once is not cut off', async () => {
      // More acks than the bucket holds: each notification sent earns its ack (and its read).
      const n = CLIENT_FRAMES.burst + 500;
      await seedNotifications(t, 'replayer', n);
      await waitForInboxSeq(t, 'replayer', n, 60_000);
      const c = await connect(t.url, userToken('replayer'), { after: 0 });
      open.push(c);
      const received = await c.waitForNotifications(n, 60_000);
      for (const m of received) c.send({ type: 'ack', seq: m.seq });
      c.send({ type: 'ping' });
      await c.waitFor((m) => m.type === 'pong', 'pong after the acks');
      expect(c.closedWith).toBeNull();
    });
  });

  it('answers ready first even when the client speaks before it', async () => {
    const store = t.herald.adapters.store;
    const inboxState = store.inboxState;
    // The store read that precedes ready takes a while, as on a busy store.
    store.inboxState = async (userId: string) => {
      await sleep(300);
      return inboxState.call(store, userId);
    };
    try {
      await notify(t, 'eager');
      await waitForInboxSeq(t, 'eager', 1);
      const c = await connect(t.url, userToken('eager'));
      open.push(c);
      c.send({ type: 'ping' });
      c.send('not json');
      c.send({ type: 'read', seq: 1 });
      c.send({ type: 'ping' });
      await c.waitFor((m) => m.type === 'unread', 'the unread count after the read');
      expect(c.messages.slice(0, 4).map((m) => m.type)).toEqual(['ready', 'pong', 'error', 'pong']);
      expect(c.messages[0]).toMatchObject({ type: 'ready', lastSeq: 1, unreadCount: 1 });
      expect(c.ofType('unread').at(-1)).toMatchObject({ unreadCount: 0 });
    } finally {
      store.inboxState = inboxState;
    }
  });

  it('a text frame that is not valid UTF-8 closes the socket with 1007; others are unaffected', async () => {
    const bystander = (await connectReady(t.url, userToken('utf8-bystander'))).client;
    open.push(bystander);
    const c = (await connectReady(t.url, userToken('utf8'))).client;
    c.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    expect((await c.closed).code).toBe(1007);
    bystander.send({ type: 'ping' });
    await bystander.waitFor((m) => m.type === 'pong', 'pong on the other socket');
    expect(bystander.closedWith).toBeNull();
  });
});
