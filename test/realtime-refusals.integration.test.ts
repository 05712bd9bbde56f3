/**
 * What the gateway refuses, and that refusing costs nobody else anything (docs/realtime.md,
 * "Connecting", "Client → server", "Close codes"): bad upgrades are answered with an HTTP error and
 * the usual error JSON; bad frames are answered with `{"type":"error"}` and the socket stays open;
 * too many of them close it with 1008, an oversized frame with 1009. One healthy socket stays open
 * through all of it and still receives a notification at the end.
 *
 * Store-independent (authentication and frame handling happen before any store access), so one
 * Herald on PGlite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../src/core/errors.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, expectError, nowSeconds, rawRequest, signJwt, userToken } from './support/http.ts';
import {
  connectReady,
  notify,
  type RealtimeClient,
  refusedUpgrade,
  type ServerMessage,
  sleep,
} from './support/ws-client.ts';

describe('real-time refusals', () => {
  let t: TestHerald;
  let healthy: RealtimeClient;
  const open: RealtimeClient[] = [];

  beforeAll(async () => {
    t = await startTestHerald({ store: 'pglite' });
    healthy = (await connectReady(t.url, userToken('healthy'))).client;
    open.push(healthy);
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await t?.stop();
  });

  async function socket(userId: string): Promise<RealtimeClient> {
    const { client } = await connectReady(t.url, userToken(userId));
    open.push(client);
    return client;
  }

  function expectErrorFrame(m: ServerMessage, code?: string) {
    expect(Object.keys(m).sort()).toEqual(['code', 'message', 'type']);
    expect(m.type).toBe('error');
    expect(Object.keys(ERRORS)).toContain(m.code);
    if (code) expect(m.code).toBe(code);
    expect(typeof m.message).toBe('string');
    expect(m.message.length).toBeGreaterThan(0);
  }

  describe('upgrades answered with an HTTP error', () => {
    const hour = () => nowSeconds() + 3600;
    const cases: [string, () => string | null][] = [
      ['a missing token', () => null],
      ['an empty token', () => ''],
      ['a token that is not a JWT', () => 'not-a-token'],
      [
        'a token signed with another secret',
        () => signJwt({ sub: 'a', exp: hour() }, { secret: 'wrong-secret-0123456789' }),
      ],
      ['an alg "none" token', () => signJwt({ sub: 'a', exp: hour() }, { alg: 'none' })],
      ['an expired token', () => signJwt({ sub: 'a', iat: nowSeconds() - 7200, exp: nowSeconds() - 60 })],
      ['a token without exp', () => signJwt({ sub: 'a', iat: nowSeconds() })],
      ['a token without sub', () => signJwt({ exp: hour() })],
      ['the producer API key as token', () => 'test-api-key-0123456789abcdef'],
    ];
    it.each(cases)('401 for %s', async (_name, token) => {
      const r = await refusedUpgrade(t.url, token());
      expectError(r, 'HERALD_ERR_UNAUTHORIZED');
    });

    it.each(['-1', 'abc', '1.5', '', '1e3', '99999999999999999999'])('400 for after=%j', async (after) => {
      const r = await refusedUpgrade(t.url, userToken('a'), { after });
      const error = expectError(r, 'HERALD_ERR_VALIDATION');
      expect(JSON.stringify(error)).toContain('after');
    });

    it('404 for an upgrade on another path', async () => {
      const r = await refusedUpgrade(t.url, userToken('a'), { path: '/v1/other' });
      expectError(r, 'HERALD_ERR_NOT_FOUND');
      const r2 = await refusedUpgrade(t.url, userToken('a'), { path: '/v1/realtime/x' });
      expectError(r2, 'HERALD_ERR_NOT_FOUND');
    });
  });

  it('a plain HTTP GET of /v1/realtime is answered 426', async () => {
    for (const query of ['', `?token=${userToken('a')}`, `?token=${userToken('a')}&after=3`]) {
      const r = await rawRequest(t.url, 'GET', `/v1/realtime${query}`);
      expectError(r, 'HERALD_ERR_UPGRADE_REQUIRED');
    }
  });

  it("a user token may not read another user's inbox or presence (403)", async () => {
    const asB = bearer(userToken('user-b'));
    expectError(await t.api('GET', '/v1/users/user-a/inbox', undefined, asB), 'HERALD_ERR_FORBIDDEN');
    expectError(await t.api('GET', '/v1/users/user-a/presence', undefined, asB), 'HERALD_ERR_FORBIDDEN');
    expectError(await t.api('POST', '/v1/users/user-a/inbox/read', { all: true }, asB), 'HERALD_ERR_FORBIDDEN');
    expect((await t.api('GET', '/v1/users/user-b/inbox', undefined, asB)).status).toBe(200);
  });

  it('malformed frames are answered with an error message and the socket stays open', async () => {
    const c = await socket('frames');
    const bad: [string | Buffer, string][] = [
      ['not json', 'HERALD_ERR_MALFORMED_JSON'],
      ['[1,2,3]', 'HERALD_ERR_VALIDATION'],
      ['null', 'HERALD_ERR_VALIDATION'],
      ['"ping"', 'HERALD_ERR_VALIDATION'],
      ['{"type":"subscribe"}', 'HERALD_ERR_VALIDATION'],
      ['{"seq":1}', 'HERALD_ERR_VALIDATION'],
      ['{"type":"ack","seq":"x"}', 'HERALD_ERR_VALIDATION'],
      ['{"type":"read","seq":-1}', 'HERALD_ERR_VALIDATION'],
      ['{"type":"ack","seq":1.5}', 'HERALD_ERR_VALIDATION'],
    ];
    for (const [i, [frame, code]] of bad.entries()) {
      c.send(frame);
      const m = await c.waitFor((x) => x.type === 'error', `error for ${frame}`, 5_000, 1 + i);
      expectErrorFrame(m, code);
    }
    expect(c.messages).toHaveLength(1 + bad.length);
    // Still open and served: a ping is answered.
    c.send({ type: 'ping' });
    await c.waitFor((m) => m.type === 'pong', 'pong after the malformed frames');
    expect(c.closedWith).toBeNull();
  });

  it('a binary frame is answered with an error message', async () => {
    const c = await socket('binary');
    c.ws.send(Buffer.from(JSON.stringify({ type: 'ping' })), { binary: true });
    expectErrorFrame(await c.waitFor((m) => m.type === 'error', 'error for a binary frame'));
    c.send({ type: 'ping' });
    await c.waitFor((m) => m.type === 'pong', 'pong after the binary frame');
    expect(c.closedWith).toBeNull();
  });

  it('ten malformed frames close the socket with 1008', async () => {
    const c = await socket('ten-bad');
    for (let i = 0; i < 10; i++) c.send(`garbage ${i}`);
    const closed = await c.closed;
    expect(closed.code).toBe(1008);
    const errors = c.ofType('error');
    expect(errors).toHaveLength(9);
    for (const e of errors) expectErrorFrame(e, 'HERALD_ERR_MALFORMED_JSON');
  });

  it('a frame of 4 KiB is accepted; a larger one closes the socket with 1009', async () => {
    const c = await socket('large');
    const pad = (size: number) => {
      const base = JSON.stringify({ type: 'ping', pad: '' });
      return JSON.stringify({ type: 'ping', pad: 'x'.repeat(size - base.length) });
    };
    expect(Buffer.byteLength(pad(4096))).toBe(4096);
    c.send(pad(4096));
    await c.waitFor((m) => m.type === 'pong', 'pong for a 4096-byte frame');
    c.send(pad(4097));
    expect((await c.closed).code).toBe(1009);
  });

  it('the healthy socket was not affected and still receives notifications', async () => {
    // Sockets of users that were refused or closed do not receive anything either way.
    const id = await notify(t, 'healthy');
    const [n] = await healthy.waitForNotifications(1);
    expect(n).toMatchObject({ type: 'notification', seq: 1, id });
    healthy.send({ type: 'ping' });
    await healthy.waitFor((m) => m.type === 'pong', 'pong on the healthy socket');
    await sleep(100);
    expect(healthy.messages.map((m) => m.type)).toEqual(['ready', 'notification', 'pong']);
    expect(healthy.closedWith).toBeNull();
    expect((await rawRequest(t.url, 'GET', '/healthz')).status).toBe(200);
  });
});
