/**
 * Push devices over HTTP, on both stores (PostgreSQL is where concurrent registrations really run
 * in parallel transactions): registering is idempotent and race-safe, a user holds at most 100
 * devices, a user token reaches its own devices only, every invalid token is refused naming its
 * field, and a Web Push endpoint on a non-public address is refused unless HERALD_EGRESS_ALLOW
 * covers it.
 */
import { createECDH, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_SHAPES } from '../src/api/openapi-shapes-users.ts';
import { UUID_RE } from '../src/core/ids.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, expectError, expectNamesField, userToken } from './support/http.ts';

function subscription(endpoint = `https://push.example.com/sub/${randomUUID()}`) {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return {
    endpoint,
    keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') },
  };
}
const fcmToken = () => `${randomBytes(8).toString('base64url')}:APA91b${randomBytes(100).toString('base64url')}`;
const apnsToken = () => randomBytes(32).toString('hex');
/** A fresh user id per test, so tests do not see each other's devices. */
const freshUser = () => `u-${randomUUID().slice(0, 8)}`;

function expectShape(shape: keyof typeof DEVICE_SHAPES, value: unknown) {
  const r = DEVICE_SHAPES[shape].schema.safeParse(value);
  expect(r.success ? [] : r.error.issues, `${shape}: ${JSON.stringify(value)}`).toEqual([]);
}

describe.each(['pglite', 'postgres'] as const)('devices (%s)', (storeKind) => {
  let t: TestHerald;
  beforeAll(async () => {
    // No egress allowance: loopback endpoints are refused, as in production.
    t = await startTestHerald({ store: storeKind, env: { HERALD_EGRESS_ALLOW: '' } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const devicesPath = (userId: string) => `/v1/users/${encodeURIComponent(userId)}/devices`;
  const register = (userId: string, body: unknown, headers?: Record<string, string>) =>
    t.api('POST', devicesPath(userId), body, headers);
  const list = async (userId: string) => {
    const r = await t.api('GET', devicesPath(userId));
    expect(r.status).toBe(200);
    expectShape('devices', r.json);
    return r.json.items as any[];
  };
  async function rowsOf(userId: string): Promise<number> {
    const [r] = await (t.herald.adapters.store as SqlStore).sql.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM devices WHERE user_id = $1',
      [userId],
    );
    return r?.n ?? 0;
  }

  it('registers a Web Push subscription → 201 {id, provider, createdAt}; the same again → 200, same id', async () => {
    const user = freshUser();
    const sub = subscription();
    const before = Date.now();
    const first = await register(user, { provider: 'webpush', token: sub });
    expect(first.status, JSON.stringify(first.json)).toBe(201);
    expect(Object.keys(first.json).sort()).toEqual(['createdAt', 'id', 'provider']);
    expectShape('registered', first.json);
    expect(first.json.id).toMatch(UUID_RE);
    expect(first.json.id[14]).toBe('7'); // UUIDv7
    expect(first.json.provider).toBe('webpush');
    expect(Date.parse(first.json.createdAt)).toBeGreaterThanOrEqual(before - 1_000);

    const again = await register(user, { provider: 'webpush', token: sub });
    expect(again.status).toBe(200);
    expect(again.json).toEqual(first.json);
    // As a browser's PushSubscription.toJSON() gives it, with padded keys: still the same device.
    const asBrowser = await register(user, {
      provider: 'webpush',
      token: { ...sub, expirationTime: null, keys: { p256dh: `${sub.keys.p256dh}=`, auth: `${sub.keys.auth}==` } },
    });
    expect(asBrowser.status).toBe(200);
    expect(asBrowser.json.id).toBe(first.json.id);

    const items = await list(user);
    expect(items).toEqual([
      { id: first.json.id, provider: 'webpush', token: sub, createdAt: first.json.createdAt, lastUsedAt: null },
    ]);
    expect(await rowsOf(user)).toBe(1);
  });

  it('renewed keys under the same endpoint are the same device, with the new keys', async () => {
    const user = freshUser();
    const old = subscription();
    const renewed = subscription(old.endpoint);
    const a = await register(user, { provider: 'webpush', token: old });
    const b = await register(user, { provider: 'webpush', token: renewed });
    expect([a.status, b.status]).toEqual([201, 200]);
    expect(b.json.id).toBe(a.json.id);
    expect((await list(user)).map((d) => d.token)).toEqual([renewed]);
  });

  it('registers FCM and APNs tokens; APNs hex is stored lower-case and matched in any case', async () => {
    const user = freshUser();
    const fcm = fcmToken();
    const apns = apnsToken();
    const f = await register(user, { provider: 'fcm', token: fcm });
    const a = await register(user, { provider: 'apns', token: apns.toUpperCase() });
    expect([f.status, a.status]).toEqual([201, 201]);
    expect(f.json.provider).toBe('fcm');
    expect(a.json.provider).toBe('apns');
    const again = await register(user, { provider: 'apns', token: apns });
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(a.json.id);
    // The same string under another provider is another device.
    const otherProvider = await register(user, { provider: 'fcm', token: apns });
    expect(otherProvider.status).toBe(201);

    const items = await list(user);
    expect(items.map((d) => [d.id, d.provider, d.token])).toEqual([
      [f.json.id, 'fcm', fcm],
      [a.json.id, 'apns', apns],
      [otherProvider.json.id, 'fcm', apns],
    ]);
    // The same token for another user is that user's device.
    const other = freshUser();
    const theirs = await register(other, { provider: 'fcm', token: fcm });
    expect(theirs.status).toBe(201);
    expect(theirs.json.id).not.toBe(f.json.id);
  });

  it('20 concurrent identical registrations: one 201, nineteen 200, one id, one row', async () => {
    const user = freshUser();
    const body = { provider: 'webpush', token: subscription() };
    const answers = await Promise.all(Array.from({ length: 20 }, () => register(user, body)));
    expect(answers.map((r) => r.status).sort((x, y) => x - y)).toEqual([...Array(19).fill(200), 201]);
    expect(new Set(answers.map((r) => r.json.id)).size).toBe(1);
    expect(await rowsOf(user)).toBe(1);
  });

  it('caps a user at 100 devices (409 HERALD_ERR_TOO_MANY_DEVICES), also under concurrent registrations', async () => {
    const user = freshUser();
    const tokens = Array.from({ length: 95 }, apnsToken);
    for (const token of tokens) expect((await register(user, { provider: 'apns', token })).status).toBe(201);
    const racing = await Promise.all(
      Array.from({ length: 10 }, () => register(user, { provider: 'fcm', token: fcmToken() })),
    );
    expect(racing.filter((r) => r.status === 201)).toHaveLength(5);
    for (const r of racing.filter((x) => x.status !== 201)) {
      const error = expectError(r, 'HERALD_ERR_TOO_MANY_DEVICES');
      expect(error.message).toMatch(/100 devices/);
    }
    expect(await rowsOf(user)).toBe(100);
    // A token the user already has is still answered 200 at the cap.
    const known = await register(user, { provider: 'apns', token: tokens[0] });
    expect(known.status).toBe(200);
    // Deleting one makes room for one.
    expect((await t.api('DELETE', `${devicesPath(user)}/${known.json.id}`)).status).toBe(204);
    expect((await register(user, { provider: 'fcm', token: fcmToken() })).status).toBe(201);
    expectError(await register(user, { provider: 'fcm', token: fcmToken() }), 'HERALD_ERR_TOO_MANY_DEVICES');
  });

  it("DELETE → 204 and the device is gone; absent, malformed or another user's device → 404", async () => {
    const alice = freshUser();
    const bob = freshUser();
    const a1 = (await register(alice, { provider: 'fcm', token: fcmToken() })).json.id;
    const a2 = (await register(alice, { provider: 'webpush', token: subscription() })).json.id;
    const b1 = (await register(bob, { provider: 'fcm', token: fcmToken() })).json.id;

    const removed = await t.api('DELETE', `${devicesPath(alice)}/${a1}`);
    expect(removed.status).toBe(204);
    expect(removed.json).toBe('');
    expect((await list(alice)).map((d) => d.id)).toEqual([a2]);

    expectError(await t.api('DELETE', `${devicesPath(alice)}/${a1}`), 'HERALD_ERR_NOT_FOUND');
    expectError(await t.api('DELETE', `${devicesPath(alice)}/${randomUUID()}`), 'HERALD_ERR_NOT_FOUND');
    expectError(await t.api('DELETE', `${devicesPath(alice)}/not-a-uuid`), 'HERALD_ERR_NOT_FOUND');
    // Bob's device under Alice's path: not found, and still Bob's.
    expectError(await t.api('DELETE', `${devicesPath(alice)}/${b1}`), 'HERALD_ERR_NOT_FOUND');
    expect((await list(bob)).map((d) => d.id)).toEqual([b1]);
    expect(await list(freshUser())).toEqual([]);
  });

  it("a user token registers, lists and removes its own devices, and gets 403 on another user's", async () => {
    const alice = freshUser();
    const bob = freshUser();
    const asAlice = bearer(userToken(alice));
    const mine = await register(alice, { provider: 'apns', token: apnsToken() }, asAlice);
    expect(mine.status).toBe(201);
    const listed = await t.api('GET', devicesPath(alice), undefined, asAlice);
    expect(listed.status).toBe(200);
    expect(listed.json.items.map((d: any) => d.id)).toEqual([mine.json.id]);

    const bobs = (await register(bob, { provider: 'fcm', token: fcmToken() })).json.id;
    expectError(await register(bob, { provider: 'fcm', token: fcmToken() }, asAlice), 'HERALD_ERR_FORBIDDEN');
    expectError(await t.api('GET', devicesPath(bob), undefined, asAlice), 'HERALD_ERR_FORBIDDEN');
    expectError(await t.api('DELETE', `${devicesPath(bob)}/${bobs}`, undefined, asAlice), 'HERALD_ERR_FORBIDDEN');
    expect(await rowsOf(bob)).toBe(1);

    expect((await t.api('DELETE', `${devicesPath(alice)}/${mine.json.id}`, undefined, asAlice)).status).toBe(204);
    expect(await rowsOf(alice)).toBe(0);
    // Without credentials: 401.
    expectError(
      await register(alice, { provider: 'fcm', token: fcmToken() }, { authorization: '' }),
      'HERALD_ERR_UNAUTHORIZED',
    );
  });

  const sub = subscription('https://push.example.com/sub/1');
  const withToken = (token: Record<string, unknown>) => ({ provider: 'webpush', token: { ...sub, ...token } });
  const withKeys = (keys: Record<string, unknown>) => withToken({ keys: { ...sub.keys, ...keys } });
  const offCurve = Buffer.from(sub.keys.p256dh, 'base64url');
  offCurve[64] = (offCurve[64] as number) ^ 1;

  it.each([
    ['no provider', { token: fcmToken() }, 'provider'],
    ['an unknown provider', { provider: 'sms', token: fcmToken() }, 'provider'],
    ['an unknown field', { provider: 'fcm', token: fcmToken(), name: 'phone' }, '(body)'],
    ['an http endpoint', withToken({ endpoint: 'http://push.example.com/sub/1' }), 'token.endpoint'],
    ['an endpoint that is not a URL', withToken({ endpoint: 'push service' }), 'token.endpoint'],
    ['a p256dh of 64 bytes', withKeys({ p256dh: randomBytes(64).toString('base64url') }), 'token.keys.p256dh'],
    ['a p256dh off the curve', withKeys({ p256dh: offCurve.toString('base64url') }), 'token.keys.p256dh'],
    ['a p256dh that is not base64url', withKeys({ p256dh: 'B+/=' }), 'token.keys.p256dh'],
    ['an auth of 12 bytes', withKeys({ auth: randomBytes(12).toString('base64url') }), 'token.keys.auth'],
    ['no keys', { provider: 'webpush', token: { endpoint: sub.endpoint } }, 'token.keys'],
    ['an empty FCM token', { provider: 'fcm', token: '' }, 'token'],
    ['an FCM token of 4097 characters', { provider: 'fcm', token: 'a'.repeat(4097) }, 'token'],
    ['an FCM token with a space', { provider: 'fcm', token: 'a b' }, 'token'],
    ['a non-hex APNs token', { provider: 'apns', token: 'z'.repeat(64) }, 'token'],
    ['an APNs token of 32 hex characters', { provider: 'apns', token: 'a'.repeat(32) }, 'token'],
    ['an APNs token of odd length', { provider: 'apns', token: 'a'.repeat(67) }, 'token'],
    ['an APNs token over 200 characters', { provider: 'apns', token: 'a'.repeat(202) }, 'token'],
  ])('refuses %s → 400 naming the field, storing nothing', async (_what, body, field) => {
    const user = freshUser();
    const error = expectError(await register(user, body), 'HERALD_ERR_VALIDATION');
    expectNamesField(error, field);
    expect(await rowsOf(user)).toBe(0);
  });

  it.each([
    ['https://127.0.0.1/push', /destination 127\.0\.0\.1 is a loopback address.*HERALD_EGRESS_ALLOW/],
    ['https://0x7f000001/push', /destination 127\.0\.0\.1 is a loopback address/],
    ['https://[::1]/push', /destination ::1 is a loopback address/],
    ['https://localhost:8443/push', /loopback name.*HERALD_EGRESS_ALLOW/],
    ['https://10.1.2.3/push', /destination 10\.1\.2\.3 is a private address/],
    ['https://169.254.169.254/latest', /link-local/],
  ])('refuses the Web Push endpoint %s (not public, not allowed) naming token.endpoint', async (endpoint, why) => {
    const user = freshUser();
    const error = expectError(await register(user, withToken({ endpoint })), 'HERALD_ERR_VALIDATION');
    expect(error.details).toEqual([{ field: 'token.endpoint', message: expect.stringMatching(why) }]);
    expect(await rowsOf(user)).toBe(0);
  });

  it('keeps lastUsedAt when a push channel touches a device, and forgets a device removed as dead', async () => {
    const user = freshUser();
    const store = t.herald.adapters.store as SqlStore;
    const a = (await register(user, { provider: 'fcm', token: fcmToken() })).json.id;
    const b = (await register(user, { provider: 'apns', token: apnsToken() })).json.id;
    const before = Date.now();
    await store.touchDevices([a, randomUUID(), 'not-a-uuid']);
    const items = await list(user);
    expect(items.find((d) => d.id === b).lastUsedAt).toBeNull();
    const used = Date.parse(items.find((d) => d.id === a).lastUsedAt);
    expect(used).toBeGreaterThanOrEqual(before - 1_000);
    expect(used).toBeLessThanOrEqual(Date.now() + 1_000);
    // Removal by id alone (a dead token reported by its provider).
    expect(await store.removeDevice(a)).toBe(true);
    expect(await store.removeDevice(a)).toBe(false);
    expect((await list(user)).map((d) => d.id)).toEqual([b]);
  });

  it('reads the devices of several users in one statement: each user oldest first, a user without any absent', async () => {
    const [u1, u2, none] = [freshUser(), freshUser(), freshUser()];
    const store = t.herald.adapters.store as SqlStore;
    const a = (await register(u1, { provider: 'fcm', token: fcmToken() })).json.id;
    const b = (await register(u1, { provider: 'apns', token: apnsToken() })).json.id;
    const c = (await register(u2, { provider: 'fcm', token: fcmToken() })).json.id;
    const found = await store.listDevicesOfUsers([u2, u1, none, u1]);
    expect([...found.keys()].sort()).toEqual([u1, u2].sort());
    expect(found.get(u1)?.map((d) => d.id)).toEqual([a, b]);
    expect(found.get(u1)).toEqual(await store.listDevices(u1));
    expect(found.get(u2)?.map((d) => [d.id, d.userId, d.provider])).toEqual([[c, u2, 'fcm']]);
    expect(found.has(none)).toBe(false);
    expect((await store.listDevicesOfUsers([])).size).toBe(0);
  });
});

describe('devices with HERALD_EGRESS_ALLOW covering loopback', () => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ env: { HERALD_EGRESS_ALLOW: '127.0.0.0/8,::1/128' } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('accepts a loopback Web Push endpoint (a push service under test), still not a private one', async () => {
    for (const endpoint of ['https://127.0.0.1:8443/push/1', 'https://localhost:8443/push/2']) {
      const r = await t.api('POST', '/v1/users/alice/devices', { provider: 'webpush', token: subscription(endpoint) });
      expect(r.status, `${endpoint}: ${JSON.stringify(r.json)}`).toBe(201);
    }
    const refused = await t.api('POST', '/v1/users/alice/devices', {
      provider: 'webpush',
      token: subscription('https://192.168.1.20/push'),
    });
    expectNamesField(expectError(refused, 'HERALD_ERR_VALIDATION'), 'token.endpoint');
  });
});
