/**
 * The FCM sender against a local fake of Google's token endpoint and FCM HTTP v1 (test/support/fake-fcm.ts):
 * the OAuth2 token is obtained with a verified assertion, cached, renewed before it expires and shared by
 * concurrent sends; each kind of answer becomes the outcome the push channel acts on; HTTPS works with a
 * CA the sender is told to trust, and fails without it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type FakeFcm, type FakeFcmOptions, startFakeFcm } from '../../test/support/fake-fcm.ts';
import type { Device } from '../core/devices.ts';
import { readServiceAccount } from './fcm-service-account.ts';
import { createFcmSender, type FcmOptions, type FcmSender } from './push-fcm.ts';
import type { PushMessage } from './push-sender.ts';

const fakes: FakeFcm[] = [];
const senders: FcmSender[] = [];

afterEach(async () => {
  await Promise.all(senders.splice(0).map((s) => s.close()));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function setup(options: FakeFcmOptions = {}, sender: Partial<FcmOptions> = {}) {
  const fake = await startFakeFcm(options);
  fakes.push(fake);
  const s = createFcmSender({
    serviceAccount: readServiceAccount(fake.serviceAccountPath),
    baseUrl: fake.url,
    timeoutMs: 3000,
    ...sender,
  });
  if (!s) throw new Error('expected a sender');
  senders.push(s);
  return { fake, sender: s };
}

function device(token = `fcm-token-${Math.random().toString(36).slice(2)}`): Device {
  return { provider: 'fcm', token, id: 'd1', userId: 'u1', createdAt: new Date(), lastUsedAt: null };
}

const MESSAGE: PushMessage = {
  notificationId: '0190a0b0-0000-7000-8000-000000000002',
  deliveryId: '0190a0b0-0000-7000-8000-000000000001',
  category: 'comment.reply',
  priority: 'high',
  title: 'Ada replied',
  body: 'Looks good to me',
  data: { thread: 't-9', n: 3 },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FCM sender', () => {
  it('is not created without settings', () => {
    expect(createFcmSender(undefined)).toBeUndefined();
  });

  it('sends the v1 message with a Bearer token from a verified assertion, and reports the message name', async () => {
    const { fake, sender } = await setup();
    const out = await sender.send(device('tok-a'), MESSAGE);
    expect(out).toEqual({
      ok: true,
      detail: { provider: 'fcm', name: expect.stringMatching(/^projects\/.+\/messages\//) },
    });
    expect(fake.refused).toEqual([]);
    expect(fake.received).toHaveLength(1);
    expect(fake.received[0]?.message).toEqual({
      token: 'tok-a',
      notification: { title: 'Ada replied', body: 'Looks good to me' },
      data: { id: MESSAGE.notificationId, category: 'comment.reply', data: '{"thread":"t-9","n":3}' },
      android: { priority: 'high' },
    });
    expect(fake.received[0]?.accessToken).toBe(fake.issued[0]);
  });

  it('maps lanes to Android priority and leaves out what the notification lacks', async () => {
    const { fake, sender } = await setup();
    await sender.send(device('tok-b'), { ...MESSAGE, priority: 'bulk', title: null, body: null, data: null });
    expect(fake.received[0]?.message).toEqual({
      token: 'tok-b',
      data: { id: MESSAGE.notificationId, category: 'comment.reply' },
      android: { priority: 'normal' },
    });
  });

  it('authenticates once for many sends (the token is cached)', async () => {
    const { fake, sender } = await setup();
    for (let i = 0; i < 5; i++) expect((await sender.send(device(), MESSAGE)).ok).toBe(true);
    expect(fake.tokenRequests).toBe(1);
    expect(new Set(fake.received.map((r) => r.accessToken)).size).toBe(1);
  });

  it('renews the token before it expires, without a 401', async () => {
    const { fake, sender } = await setup({ expiresIn: 1 });
    expect((await sender.send(device(), MESSAGE)).ok).toBe(true);
    await sleep(1000);
    expect((await sender.send(device(), MESSAGE)).ok).toBe(true);
    expect(fake.tokenRequests).toBe(2);
    expect(fake.unauthenticated).toBe(0);
    expect(fake.received[1]?.accessToken).toBe(fake.issued[1]);
  });

  it('concurrent sends share one token request', async () => {
    const { fake, sender } = await setup({ tokenDelayMs: 200 });
    const outs = await Promise.all(Array.from({ length: 20 }, () => sender.send(device(), MESSAGE)));
    expect(outs.every((o) => o.ok)).toBe(true);
    expect(fake.tokenRequests).toBe(1);
    expect(fake.received).toHaveLength(20);
  });

  it('a 401 drops the cached token, gets a new one and retries once', async () => {
    const { fake, sender } = await setup();
    expect((await sender.send(device(), MESSAGE)).ok).toBe(true);
    fake.revokeAll();
    const out = await sender.send(device('tok-c'), MESSAGE);
    expect(out.ok).toBe(true);
    expect(fake.unauthenticated).toBe(1);
    expect(fake.tokenRequests).toBe(2);
    expect(fake.received.filter((r) => r.token === 'tok-c')).toHaveLength(1);
  });

  it('a second 401 is transient, after exactly one retry', async () => {
    const { fake, sender } = await setup({ answer: () => ({ kind: 'unauthenticated' }) });
    const out = await sender.send(device(), MESSAGE);
    expect(out).toMatchObject({ ok: false, permanent: false, error: expect.stringContaining('HTTP 401') });
    expect(fake.received).toHaveLength(2);
    expect(fake.tokenRequests).toBe(2);
  });

  it('UNREGISTERED is a dead token', async () => {
    const { sender } = await setup({ answer: () => ({ kind: 'unregistered' }) });
    const out = await sender.send(device(), MESSAGE);
    expect(out).toEqual({
      ok: false,
      permanent: true,
      reason: 'token_dead',
      error: expect.stringContaining('UNREGISTERED'),
    });
  });

  it('400 INVALID_ARGUMENT about the token is a dead token; another 400 is permanent', async () => {
    const { sender } = await setup({
      answer: (r) =>
        r.token === 'bad'
          ? { kind: 'invalid-token' }
          : {
              kind: 'error',
              status: 400,
              googleStatus: 'INVALID_ARGUMENT',
              message: 'Invalid JSON payload received.',
              errorCode: 'INVALID_ARGUMENT',
            },
    });
    expect(await sender.send(device('bad'), MESSAGE)).toMatchObject({ ok: false, reason: 'token_dead' });
    const other = await sender.send(device('fine'), MESSAGE);
    expect(other).toEqual({
      ok: false,
      permanent: true,
      error: 'FCM answered HTTP 400: INVALID_ARGUMENT: Invalid JSON payload received.',
    });
  });

  it('503 with Retry-After is transient with retryAfterMs; 500 and 429 are transient', async () => {
    const { sender } = await setup({
      answer: (r) =>
        r.token === 'busy'
          ? {
              kind: 'error',
              status: 503,
              googleStatus: 'UNAVAILABLE',
              message: 'try later',
              errorCode: 'UNAVAILABLE',
              headers: { 'retry-after': '7' },
            }
          : r.token === 'quota'
            ? {
                kind: 'error',
                status: 429,
                googleStatus: 'RESOURCE_EXHAUSTED',
                message: 'quota',
                errorCode: 'QUOTA_EXCEEDED',
              }
            : { kind: 'error', status: 500, googleStatus: 'INTERNAL', message: 'oops', errorCode: 'INTERNAL' },
    });
    expect(await sender.send(device('busy'), MESSAGE)).toEqual({
      ok: false,
      permanent: false,
      error: 'FCM answered HTTP 503: UNAVAILABLE: try later',
      retryAfterMs: 7000,
    });
    expect(await sender.send(device('quota'), MESSAGE)).toMatchObject({ ok: false, permanent: false });
    expect(await sender.send(device('oops'), MESSAGE)).toMatchObject({ ok: false, permanent: false });
  });

  it('403 SENDER_ID_MISMATCH is permanent, not dead (a wrong project must not delete devices)', async () => {
    const { sender } = await setup({
      answer: () => ({
        kind: 'error',
        status: 403,
        googleStatus: 'PERMISSION_DENIED',
        message: 'SenderId mismatch',
        errorCode: 'SENDER_ID_MISMATCH',
      }),
    });
    expect(await sender.send(device(), MESSAGE)).toMatchObject({
      ok: false,
      permanent: true,
      error: expect.stringContaining('SENDER_ID_MISMATCH'),
    });
  });

  it("a 404 that is not FCM's (a wrong base URL) is transient, not dead", async () => {
    const { fake } = await setup();
    const sender = createFcmSender({
      serviceAccount: readServiceAccount(fake.serviceAccountPath),
      baseUrl: `${fake.url}/wrong`,
      timeoutMs: 3000,
    }) as FcmSender;
    senders.push(sender);
    expect(await sender.send(device(), MESSAGE)).toMatchObject({ ok: false, permanent: false });
  });

  it('a refused token request is transient, names token_uri, is not cached, and never shows the key', async () => {
    const { fake } = await setup();
    const sa = readServiceAccount(fake.serviceAccountPath);
    const sender = createFcmSender({
      serviceAccount: { ...sa, clientEmail: 'someone-else@example.com' },
      baseUrl: fake.url,
      timeoutMs: 3000,
    }) as FcmSender;
    senders.push(sender);
    const out = await sender.send(device(), MESSAGE);
    expect(out).toMatchObject({
      ok: false,
      permanent: false,
      error: expect.stringContaining(`${sa.tokenUri} answered HTTP 400: invalid_grant`),
    });
    expect(JSON.stringify(out)).not.toContain('PRIVATE KEY');
    await sender.send(device(), MESSAGE);
    expect(fake.refused).toHaveLength(2);
    expect(fake.received).toHaveLength(0);
  });

  it('a send that cannot finish in time is transient (timed out)', async () => {
    const { sender } = await setup({ tokenDelayMs: 1500 }, { timeoutMs: 300 });
    const started = Date.now();
    expect(await sender.send(device(), MESSAGE)).toMatchObject({
      ok: false,
      permanent: false,
      error: expect.stringContaining('timed out'),
    });
    expect(Date.now() - started).toBeLessThan(1200);
  });

  it('works over HTTPS with a trusted CA, and fails transiently without it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-fcm-tls-'));
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const pem = { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
    const { fake, sender } = await setup({ tls: pem }, { ca: pem.cert });
    expect(fake.url).toMatch(/^https:/);
    expect(await sender.send(device(), MESSAGE)).toMatchObject({ ok: true });
    expect(fake.tokenRequests).toBe(1);

    const untrusting = createFcmSender({
      serviceAccount: readServiceAccount(fake.serviceAccountPath),
      baseUrl: fake.url,
      timeoutMs: 3000,
    }) as FcmSender;
    senders.push(untrusting);
    expect(await untrusting.send(device(), MESSAGE)).toMatchObject({
      ok: false,
      permanent: false,
      error: expect.stringMatching(/certificate/i),
    });
  });
});
