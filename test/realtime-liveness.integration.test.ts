/**
 * Liveness on both stores (docs/realtime.md, "Liveness and presence", "Close codes"): presence
 * counts a user's live sockets; a socket that stops answering pings is terminated within a few
 * heartbeats and stops counting, while answering ones stay; a token that expires while connected
 * closes the socket with 4401; stopping Herald closes every socket with 1012.
 *
 * One Herald per store with a 1 s heartbeat (the smallest allowed). The last test stops it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, nowSeconds, signJwt, userToken } from './support/http.ts';
import { connectReady, notify, type RealtimeClient, refusedUpgrade, sleep } from './support/ws-client.ts';

const HEARTBEAT_MS = 1000;

describe.each(['pglite', 'postgres'] as const)('real-time liveness (%s)', (store) => {
  let t: TestHerald;
  const open: RealtimeClient[] = [];

  beforeAll(async () => {
    t = await startTestHerald({ store, env: { HERALD_WS_HEARTBEAT_MS: String(HEARTBEAT_MS) } });
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.close()));
    await t?.stop();
  });

  async function socket(userId: string, options: { autoPong?: boolean; token?: string } = {}) {
    const { client } = await connectReady(t.url, options.token ?? userToken(userId), options);
    open.push(client);
    return client;
  }

  async function presence(userId: string, headers?: Record<string, string>) {
    const r = await t.api('GET', `/v1/users/${userId}/presence`, undefined, headers);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    return r.json as { userId: string; online: boolean; sockets: number; lastSeen: string | null };
  }

  it('presence counts the open sockets of a user, for the producer and for the user itself', async () => {
    const user = `presence-${store}`;
    expect(await presence(user)).toEqual({ userId: user, online: false, sockets: 0, lastSeen: null });

    const tab1 = await socket(user);
    const tab2 = await socket(user);
    await socket(`${user}-other`);
    const before = Date.now();
    for (const headers of [undefined, bearer(userToken(user))]) {
      const p = await presence(user, headers);
      expect(p).toMatchObject({ userId: user, online: true, sockets: 2 });
      expect(Math.abs(Date.parse(p.lastSeen as string) - before)).toBeLessThan(10_000);
    }
    // Heartbeats keep the entries of answering sockets alive past their two-interval expiry.
    await sleep(3 * HEARTBEAT_MS);
    expect(await presence(user)).toMatchObject({ online: true, sockets: 2 });

    await tab1.close();
    await eventually(async () => (await presence(user)).sockets === 1, 'one socket after the first tab closed');
    await tab2.close();
    const closedAt = Date.now();
    const after = await eventually(async () => {
      const p = await presence(user);
      return p.sockets === 0 ? p : null;
    }, 'no socket after both tabs closed');
    expect(after.online).toBe(false);
    expect(after.lastSeen).not.toBeNull();
    expect(Math.abs(Date.parse(after.lastSeen as string) - closedAt)).toBeLessThan(5_000);
    expect((await presence(`${user}-other`)).sockets).toBe(1);
  });

  it('a socket that stops answering pings is terminated within a few heartbeats and stops counting', async () => {
    const user = `silent-${store}`;
    const alive = await socket(user);
    const silent = await socket(user, { autoPong: false });
    const openedAt = Date.now();
    expect((await presence(user)).sockets).toBe(2);

    const closed = await silent.closed;
    const after = Date.now() - openedAt;
    expect(closed.code).toBe(1006); // terminated: no closing handshake
    expect(after).toBeLessThanOrEqual(3 * HEARTBEAT_MS + 1000); // slack for timers on a busy machine
    await eventually(async () => (await presence(user)).sockets === 1, 'the silent socket to stop counting', 2_000);
    expect(t.herald.gateway?.sockets).toBeGreaterThanOrEqual(1);

    // The answering socket of the same user outlives a few more heartbeats and is still served.
    await sleep(2 * HEARTBEAT_MS);
    expect(alive.closedWith).toBeNull();
    const id = await notify(t, user);
    expect((await alive.waitForNotifications(1))[0]).toMatchObject({ id, seq: 1 });
    expect(await presence(user)).toMatchObject({ online: true, sockets: 1 });
  });

  it('a token that expires while connected closes the socket with 4401', async () => {
    const user = `expiring-${store}`;
    const exp = nowSeconds() + 2;
    const expiring = await socket(user, { token: signJwt({ sub: user, iat: nowSeconds(), exp }) });
    const lasting = await socket(user);
    const closed = await expiring.closed;
    const closedAt = Date.now();
    expect(closed.code).toBe(4401);
    // Not before the expiry, and within about a heartbeat after it.
    expect(closedAt).toBeGreaterThanOrEqual(exp * 1000 - 50);
    expect(closedAt).toBeLessThanOrEqual(exp * 1000 + 2 * HEARTBEAT_MS + 500);
    expect(lasting.closedWith).toBeNull();
    await eventually(async () => (await presence(user)).sockets === 1, 'the expired socket to stop counting', 2_000);
  });

  it('/metrics counts open sockets, closes by code and refused upgrades', async () => {
    const metric = async (sample: string) => {
      const r = await t.api('GET', '/metrics');
      const text = typeof r.json === 'string' ? r.json : '';
      const escaped = sample.replace(/[{}"]/g, (c) => `\\${c}`);
      return Number(new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    };
    expect(await metric('herald_realtime_sockets')).toBe(t.herald.gateway?.sockets);
    // The earlier tests' silent socket (terminated: 1006) and expired token (4401).
    expect(await metric('herald_realtime_disconnects_total{code="1006"}')).toBeGreaterThanOrEqual(1);
    expect(await metric('herald_realtime_disconnects_total{code="4401"}')).toBeGreaterThanOrEqual(1);

    const opened = await metric('herald_realtime_connections_total');
    const refused = await metric('herald_realtime_refused_total{status="401"}');
    const tab = await socket(`metrics-${store}`);
    expect((await refusedUpgrade(t.url, 'not-a-token')).status).toBe(401);
    expect(await metric('herald_realtime_connections_total')).toBe(opened + 1);
    expect(await metric('herald_realtime_refused_total{status="401"}')).toBe(refused + 1);
    const normal = await metric('herald_realtime_disconnects_total{code="1000"}');
    await tab.close();
    await eventually(
      async () => (await metric('herald_realtime_disconnects_total{code="1000"}')) === normal + 1,
      'the closed tab to be counted',
      2_000,
    );
    expect(await metric('herald_realtime_sockets')).toBe(t.herald.gateway?.sockets);
  });

  it('stopping Herald closes every open socket with 1012', async () => {
    await socket(`stop-${store}-1`);
    await socket(`stop-${store}-1`);
    await socket(`stop-${store}-2`);
    // Those of the earlier tests that are still open too.
    const sockets = open.filter((c) => c.closedWith === null);
    expect(sockets.length).toBeGreaterThanOrEqual(5);
    const stopped = t.herald.stop();
    const closes = await Promise.all(sockets.map((s) => s.closed));
    for (const c of closes) expect(c.code).toBe(1012);
    await stopped;
    await eventually(() => t.herald.gateway?.sockets === 0, 'the gateway to count no socket', 2_000);
  });
});
