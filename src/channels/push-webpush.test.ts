/**
 * The Web Push sender against a local push service that checks the VAPID JWT and decrypts the
 * payload (test/support/fake-webpush.ts): what arrives, and how each answer maps to an outcome.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { type FakeSubscription, type FakeWebPush, startFakeWebPush } from '../../test/support/fake-webpush.ts';
import { makeTestCertificate, type TestCertificate } from '../../test/support/tls-cert.ts';
import type { Device } from '../core/devices.ts';
import type { Lane } from '../core/types.ts';
import { GuardedHttpClient } from './egress-http.ts';
import { EgressPolicy } from './egress-policy.ts';
import type { PushMessage } from './push-sender.ts';
import { MAX_PAYLOAD_BYTES, WebPushSender } from './push-webpush.ts';

const vapidKeys = webpush.generateVAPIDKeys();
const vapid = { ...vapidKeys, subject: 'mailto:ops@example.com' };
const LOOPBACK = new EgressPolicy(['127.0.0.0/8']);

function device(sub: FakeSubscription): Device {
  return {
    id: `dev-${sub.id}`,
    userId: 'u1',
    provider: 'webpush',
    token: { endpoint: sub.endpoint, keys: sub.keys },
    createdAt: new Date(),
    lastUsedAt: null,
  };
}

function message(extra: Partial<PushMessage> = {}): PushMessage {
  return {
    notificationId: 'n-1',
    deliveryId: 'd-1',
    category: 'comment.reply',
    priority: 'normal',
    title: 'Ada replied',
    body: 'Looks good to me',
    data: { thread: 7 },
    ...extra,
  };
}

describe('WebPushSender', () => {
  let fake: FakeWebPush;
  let sender: WebPushSender;

  beforeAll(async () => {
    fake = await startFakeWebPush({ vapidPublicKey: vapid.publicKey, subject: vapid.subject });
    sender = new WebPushSender({ vapid, http: new GuardedHttpClient({ policy: LOOPBACK }), timeoutMs: 500 });
  });
  afterAll(async () => {
    await sender?.close();
    await fake?.close();
  });

  it('sends the encrypted payload with a valid VAPID JWT, TTL and Urgency; 201 is ok', async () => {
    const sub = fake.subscribe(() => ({ status: 201, headers: { location: `${fake.origin}/m/1` } }));
    const out = await sender.send(device(sub), message());
    expect(out).toEqual({ ok: true, detail: { status: 201, location: `${fake.origin}/m/1` } });
    expect(fake.refused).toEqual([]);
    const [got] = fake.requestsFor(sub);
    expect(got?.payload).toEqual({
      id: 'n-1',
      title: 'Ada replied',
      body: 'Looks good to me',
      data: { thread: 7 },
      category: 'comment.reply',
    });
    expect(got?.ttl).toBe(86_400);
    expect(got?.urgency).toBe('normal');
    expect(got?.claims).toMatchObject({ aud: fake.origin, sub: vapid.subject });
  });

  it.each([
    ['critical', 'high'],
    ['high', 'high'],
    ['normal', 'normal'],
    ['bulk', 'low'],
  ] as [Lane, string][])('priority %s → Urgency %s', async (priority, urgency) => {
    const sub = fake.subscribe(() => ({ status: 202 }));
    expect((await sender.send(device(sub), message({ priority }))).ok).toBe(true);
    expect(fake.requestsFor(sub)[0]?.urgency).toBe(urgency);
  });

  it.each([404, 410])('%i → dead, with the answer as the reason', async (status) => {
    const sub = fake.subscribe(() => ({ status, body: 'subscription expired' }));
    const out = await sender.send(device(sub), message());
    expect(out).toEqual({
      ok: false,
      permanent: true,
      reason: 'token_dead',
      error: `push service at ${fake.origin} answered HTTP ${status}: subscription expired`,
    });
  });

  it('429 is transient and honours Retry-After; 500 and 503 are transient', async () => {
    const limited = fake.subscribe(() => ({ status: 429, headers: { 'retry-after': '7' } }));
    expect(await sender.send(device(limited), message())).toMatchObject({
      ok: false,
      permanent: false,
      retryAfterMs: 7000,
    });
    for (const status of [500, 503]) {
      const sub = fake.subscribe(() => ({ status }));
      const out = await sender.send(device(sub), message());
      expect(out).toMatchObject({ ok: false, permanent: false });
      expect(out.ok === false && out.error).toMatch(new RegExp(`HTTP ${status}`));
    }
  });

  it.each([400, 403, 413])('%i is permanent', async (status) => {
    const sub = fake.subscribe(() => ({ status }));
    expect(await sender.send(device(sub), message())).toMatchObject({ ok: false, permanent: true });
  });

  it('a push service that does not answer in time is transient', async () => {
    const sub = fake.subscribe(() => ({ status: 201, delayMs: 2000 }));
    const out = await sender.send(device(sub), message());
    expect(out).toMatchObject({ ok: false, permanent: false });
    expect(out.ok === false && out.error).toMatch(/timed out/);
  });

  it('a payload larger than one record is permanent, and nothing is sent', async () => {
    const sub = fake.subscribe();
    const out = await sender.send(device(sub), message({ body: 'x'.repeat(MAX_PAYLOAD_BYTES) }));
    expect(out).toMatchObject({ ok: false, permanent: true });
    expect(fake.requestsFor(sub)).toEqual([]);
  });

  it('an endpoint the egress policy refuses is never connected to (permanent, naming the setting)', async () => {
    const strict = new WebPushSender({
      vapid,
      http: new GuardedHttpClient({ policy: new EgressPolicy([]) }),
      timeoutMs: 500,
    });
    const before = fake.connections();
    const out = await strict.send(device(fake.subscribe()), message());
    await strict.close();
    expect(out).toMatchObject({ ok: false, permanent: true });
    expect(out.ok === false && out.error).toMatch(/127\.0\.0\.1.*HERALD_EGRESS_ALLOW/);
    expect(fake.connections()).toBe(before);
  });
});

describe('WebPushSender over HTTPS', () => {
  let cert: TestCertificate;
  let fake: FakeWebPush;

  beforeAll(async () => {
    cert = await makeTestCertificate();
    fake = await startFakeWebPush({ vapidPublicKey: vapid.publicKey, subject: vapid.subject, tls: cert });
  });
  afterAll(async () => {
    await fake?.close();
    await cert?.remove();
  });

  it('reaches an https push service whose certificate it trusts; aud is the https origin', async () => {
    const sender = new WebPushSender({
      vapid,
      http: new GuardedHttpClient({ policy: LOOPBACK, ca: cert.certPem }),
      timeoutMs: 2000,
    });
    const sub = fake.subscribe();
    const out = await sender.send(device(sub), message({ title: 'Über', body: 'naïve ✓' }));
    await sender.close();
    expect(out).toMatchObject({ ok: true });
    expect(fake.refused).toEqual([]);
    expect(fake.requestsFor(sub)[0]?.payload).toMatchObject({ title: 'Über', body: 'naïve ✓' });
    expect(fake.requestsFor(sub)[0]?.claims.aud).toBe(fake.origin);
    expect(fake.origin).toMatch(/^https:/);
  });

  it('does not trust a certificate it was not given (transient, naming the certificate)', async () => {
    const sender = new WebPushSender({ vapid, http: new GuardedHttpClient({ policy: LOOPBACK }), timeoutMs: 2000 });
    const out = await sender.send(device(fake.subscribe()), message());
    await sender.close();
    expect(out).toMatchObject({ ok: false, permanent: false });
    expect(out.ok === false && out.error).toMatch(/certificate/);
  });
});
