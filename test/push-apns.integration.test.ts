import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ApnsOptions, ApnsSender, apnsId } from '../src/channels/push-apns.ts';
import type { PushMessage } from '../src/channels/push-sender.ts';
import type { Device } from '../src/core/devices.ts';
import {
  type ApnsAnswer,
  type ApnsRequest,
  type ApnsTestKey,
  type FakeApns,
  makeApnsTestKey,
  startFakeApns,
} from './support/fake-apns.ts';

const TOPIC = 'com.example.herald';
const MIN = 60_000;

let key: ApnsTestKey;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(() => {
  key = makeApnsTestKey();
});
afterAll(() => key.cleanup());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type ApnsDevice = Extract<Device, { provider: 'apns' }>;

function device(token = randomBytes(32).toString('hex')): ApnsDevice {
  return {
    id: `dev_${randomBytes(6).toString('hex')}`,
    userId: 'user-1',
    provider: 'apns',
    token,
    createdAt: new Date(),
    lastUsedAt: null,
  };
}

function message(over: Partial<PushMessage> = {}): PushMessage {
  return {
    notificationId: 'ntf_1',
    deliveryId: `dlv_${randomBytes(6).toString('hex')}`,
    category: 'comment.reply',
    priority: 'normal',
    title: 'Ada replied',
    body: 'Looks good to me',
    data: { threadId: 't-42' },
    ...over,
  };
}

async function setup(
  answer?: (req: ApnsRequest) => ApnsAnswer,
  options: Partial<ApnsOptions> = {},
): Promise<{ fake: FakeApns; sender: ApnsSender }> {
  const fake = await startFakeApns(key, TOPIC, answer);
  cleanups.push(() => fake.close());
  const sender = new ApnsSender({
    privateKey: key.privateKeyPem,
    keyId: key.keyId,
    teamId: key.teamId,
    topic: TOPIC,
    baseUrl: fake.url,
    ca: fake.ca,
    timeoutMs: 2000,
    ...options,
  });
  cleanups.push(() => sender.close());
  return { fake, sender };
}

describe('APNs sender against a local HTTP/2 APNs', () => {
  it('sends many pushes over one HTTP/2 session with one provider token, as APNs expects them', async () => {
    const { fake, sender } = await setup();
    const d = device();
    const first = message({ priority: 'high' });
    const outcomes = await Promise.all([
      sender.send(d, first),
      ...Array.from({ length: 19 }, (_, i) => sender.send(device(), message({ priority: i % 2 ? 'bulk' : 'normal' }))),
    ]);
    for (let i = 0; i < 10; i++) outcomes.push(await sender.send(device(), message()));

    expect(fake.refused).toEqual([]);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(fake.received).toHaveLength(30);
    expect(fake.sessions()).toBe(1);
    expect(new Set(fake.received.map((r) => r.jwt)).size).toBe(1);

    const jwt = fake.received[0]?.jwt ?? '';
    expect(decodeProtectedHeader(jwt)).toEqual({ alg: 'ES256', kid: key.keyId });
    expect(Object.keys(decodeJwt(jwt)).sort()).toEqual(['iat', 'iss']);

    const r = fake.received.find((x) => x.deviceToken === d.token);
    expect(r?.headers['apns-priority']).toBe('10');
    expect(r?.headers['apns-id']).toBe(apnsId(first.deliveryId, d.id));
    expect(r?.headers['apns-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const expiration = Number(r?.headers['apns-expiration']);
    expect(expiration).toBeGreaterThan(Date.now() / 1000 + 86_000);
    expect(expiration).toBeLessThan(Date.now() / 1000 + 86_500);
    expect(r?.body).toEqual({
      aps: { alert: { title: 'Ada replied', body: 'Looks good to me' } },
      id: 'ntf_1',
      category: 'comment.reply',
      data: { threadId: 't-42' },
    });
    expect(outcomes[0]).toEqual({ ok: true, detail: { provider: 'apns', apnsId: r?.headers['apns-id'] } });
    expect(new Set(fake.received.filter((x) => x !== r).map((x) => x.headers['apns-priority']))).toEqual(
      new Set(['5']),
    );
  });

  it('a retry of the same delivery to the same device carries the same apns-id; another device gets another', async () => {
    let n = 0;
    const { fake, sender } = await setup(() =>
      ++n === 1 ? { status: 503, reason: 'ServiceUnavailable' } : { status: 200 },
    );
    const d = device();
    const m = message();
    expect(await sender.send(d, m)).toMatchObject({ ok: false, permanent: false });
    expect(await sender.send(d, m)).toMatchObject({ ok: true });
    await sender.send(device(), m);
    const ids = fake.received.map((r) => r.headers['apns-id']);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[2]).not.toBe(ids[0]);
  });

  it('opens a new session after APNs sends GOAWAY, and keeps using it', async () => {
    const { fake, sender } = await setup();
    expect(await sender.send(device(), message())).toMatchObject({ ok: true });
    fake.goaway();
    await new Promise((r) => setTimeout(r, 100));
    expect(await sender.send(device(), message())).toMatchObject({ ok: true });
    expect(await sender.send(device(), message())).toMatchObject({ ok: true });
    expect(fake.sessions()).toBe(2);
    expect(fake.received.map((r) => r.session)).toEqual([1, 2, 2]);
  });

  it('keeps an idle session alive with PINGs', async () => {
    const { fake, sender } = await setup(undefined, { pingIntervalMs: 50 });
    expect(await sender.send(device(), message())).toMatchObject({ ok: true });
    await vi.waitFor(() => expect(fake.pings()).toBeGreaterThanOrEqual(3), { timeout: 2000 });
    expect(await sender.send(device(), message())).toMatchObject({ ok: true });
    expect(fake.sessions()).toBe(1);
  });

  it('ends a session whose PINGs go unanswered, and the next push opens a new connection', async () => {
    // A peer that accepts TCP connections and never says anything (h2c, so no TLS handshake to stall).
    const sockets: import('node:net').Socket[] = [];
    let ended = 0;
    const silent = createServer((s) => {
      sockets.push(s);
      s.resume();
      s.on('close', () => {
        ended += 1;
      });
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          silent.close(() => resolve());
        }),
    );
    const sender = new ApnsSender({
      privateKey: key.privateKeyPem,
      keyId: key.keyId,
      teamId: key.teamId,
      topic: TOPIC,
      baseUrl: `http://127.0.0.1:${(silent.address() as { port: number }).port}`,
      timeoutMs: 150,
      pingIntervalMs: 50,
    });
    cleanups.push(() => sender.close());
    expect(await sender.send(device(), message())).toMatchObject({ ok: false, permanent: false });
    await vi.waitFor(() => expect(ended).toBe(1), { timeout: 2000 });
    await sender.send(device(), message());
    expect(sockets).toHaveLength(2);
  });

  it('a push cut off by a dropped connection is transient, and the next push reconnects', async () => {
    const stuck = device();
    const { fake, sender } = await setup((r) => (r.deviceToken === stuck.token ? { status: 'hang' } : { status: 200 }));
    expect(await sender.send(device(), message())).toMatchObject({ ok: true });
    const pending = sender.send(stuck, message());
    await vi.waitFor(() => expect(fake.received).toHaveLength(2));
    fake.drop();
    const outcome = await pending;
    expect(outcome).toMatchObject({ ok: false, permanent: false });
    expect(outcome.ok === false && 'error' in outcome ? outcome.error : '').not.toMatch(/timed out/);
    expect(await sender.send(device(), message())).toMatchObject({ ok: true });
    expect(fake.sessions()).toBe(2);
    expect(fake.received.map((r) => r.session)).toEqual([1, 1, 2]);
  });

  it('reuses the provider token until it is 40 minutes old, then signs a new one', async () => {
    let now = Date.now();
    const { fake, sender } = await setup(undefined, { now: () => now });
    await sender.send(device(), message());
    now += 39 * MIN;
    await sender.send(device(), message());
    now += 2 * MIN;
    await sender.send(device(), message());
    now += 10 * MIN;
    await sender.send(device(), message());
    const [a, b, c, d] = fake.received;
    expect(fake.refused).toEqual([]);
    expect(b?.jwt).toBe(a?.jwt);
    expect(c?.jwt).not.toBe(a?.jwt);
    expect((c?.iat ?? 0) - (a?.iat ?? 0)).toBe(41 * 60);
    expect(d?.jwt).toBe(c?.jwt);
  });

  it('ExpiredProviderToken is transient and renews the token at the next push, never within 20 minutes of the last', async () => {
    let now = Date.now();
    let expire = false;
    const { fake, sender } = await setup(
      () => (expire ? { status: 403, reason: 'ExpiredProviderToken' } : { status: 200 }),
      { now: () => now },
    );
    await sender.send(device(), message());
    now += 5 * MIN;
    expire = true;
    expect(await sender.send(device(), message())).toEqual({
      ok: false,
      permanent: false,
      error: 'APNs answered HTTP 403: ExpiredProviderToken',
    });
    expire = false;
    await sender.send(device(), message());
    // Only 5 minutes old: Apple would refuse a new one (TooManyProviderTokenUpdates).
    expect(fake.received[2]?.jwt).toBe(fake.received[0]?.jwt);

    now += 20 * MIN;
    expire = true;
    await sender.send(device(), message());
    expire = false;
    await sender.send(device(), message());
    await sender.send(device(), message());
    expect(fake.received[4]?.jwt).not.toBe(fake.received[0]?.jwt);
    expect(fake.received[5]?.jwt).toBe(fake.received[4]?.jwt);
  });

  it('maps APNs answers to dead, transient and permanent outcomes', async () => {
    const answers: Record<string, ApnsAnswer> = {};
    const { sender } = await setup((r) => answers[r.deviceToken] ?? { status: 200 });
    const cases: [ApnsAnswer, unknown][] = [
      [
        { status: 410, reason: 'Unregistered' },
        { ok: false, permanent: true, reason: 'token_dead', error: 'APNs answered HTTP 410: Unregistered' },
      ],
      [
        { status: 400, reason: 'BadDeviceToken' },
        { ok: false, permanent: true, reason: 'token_dead', error: 'APNs answered HTTP 400: BadDeviceToken' },
      ],
      [
        { status: 400, reason: 'DeviceTokenNotForTopic' },
        { ok: false, permanent: true, reason: 'token_dead', error: 'APNs answered HTTP 400: DeviceTokenNotForTopic' },
      ],
      [
        { status: 429, reason: 'TooManyRequests', headers: { 'retry-after': '30' } },
        { ok: false, permanent: false, error: 'APNs answered HTTP 429: TooManyRequests', retryAfterMs: 30_000 },
      ],
      [
        { status: 500, reason: 'InternalServerError' },
        { ok: false, permanent: false, error: 'APNs answered HTTP 500: InternalServerError' },
      ],
      [
        { status: 503, reason: 'ServiceUnavailable' },
        { ok: false, permanent: false, error: 'APNs answered HTTP 503: ServiceUnavailable' },
      ],
      [
        { status: 400, reason: 'BadExpirationDate' },
        { ok: false, permanent: true, error: 'APNs answered HTTP 400: BadExpirationDate' },
      ],
      [
        { status: 413, reason: 'PayloadTooLarge' },
        { ok: false, permanent: true, error: 'APNs answered HTTP 413: PayloadTooLarge' },
      ],
    ];
    for (const [answer, expected] of cases) {
      const d = device();
      answers[d.token] = answer;
      expect(await sender.send(d, message())).toEqual(expected);
    }
  });

  it('a provider token APNs does not accept (wrong key) is transient: the operator can fix it', async () => {
    const other = makeApnsTestKey();
    try {
      const { fake, sender } = await setup(undefined, { privateKey: other.privateKeyPem });
      expect(await sender.send(device(), message())).toEqual({
        ok: false,
        permanent: false,
        error: 'APNs answered HTTP 403: InvalidProviderToken',
      });
      expect(fake.refused).toHaveLength(1);
      expect(fake.refused[0]).toMatch(/^token: /);
    } finally {
      other.cleanup();
    }
  });

  it('refuses a payload over 4 KiB itself, permanently, without a request', async () => {
    const { fake, sender } = await setup();
    const outcome = await sender.send(device(), message({ data: { blob: 'x'.repeat(5000) } }));
    expect(outcome).toMatchObject({ ok: false, permanent: true });
    expect(outcome.ok === false && 'error' in outcome ? outcome.error : '').toContain('4096');
    expect(fake.received).toHaveLength(0);
  });

  it('a push APNs does not answer times out as transient, and the session stays usable', async () => {
    const slow = device();
    const { fake, sender } = await setup((r) => (r.deviceToken === slow.token ? { status: 'hang' } : { status: 200 }), {
      timeoutMs: 300,
    });
    expect(await sender.send(slow, message())).toEqual({
      ok: false,
      permanent: false,
      error: 'request to APNs failed: timed out after 300 ms',
    });
    expect(await sender.send(device(), message())).toMatchObject({ ok: true });
    expect(fake.sessions()).toBe(1);
  });

  it('an APNs that cannot be reached is transient', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const sender = new ApnsSender({
      privateKey: key.privateKeyPem,
      keyId: key.keyId,
      teamId: key.teamId,
      topic: TOPIC,
      baseUrl: `https://127.0.0.1:${port}`,
      timeoutMs: 2000,
    });
    cleanups.push(() => sender.close());
    const outcome = await sender.send(device(), message());
    expect(outcome).toMatchObject({ ok: false, permanent: false });
    expect(outcome.ok === false && 'error' in outcome ? outcome.error : '').toMatch(/ECONNREFUSED/);
  });

  it('does not trust a certificate outside the system CAs unless told to', async () => {
    const { fake } = await setup();
    const sender = new ApnsSender({
      privateKey: key.privateKeyPem,
      keyId: key.keyId,
      teamId: key.teamId,
      topic: TOPIC,
      baseUrl: fake.url,
      timeoutMs: 2000,
    });
    cleanups.push(() => sender.close());
    expect(await sender.send(device(), message())).toMatchObject({ ok: false, permanent: false });
    expect(fake.received).toHaveLength(0);
  });
});
