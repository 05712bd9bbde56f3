/**
 * The Twilio provider against a local fake of Twilio's Messages API: what it sends (auth, path,
 * form) and how it classifies every kind of answer.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type FakeTwilio, startFakeTwilio, TWILIO_ERRORS, type TwilioAnswer } from '../../test/support/fake-twilio.ts';
import type { DeliveryJob } from '../core/types.ts';
import { smsText, TwilioProvider } from './provider-twilio.ts';

function job(over: { phone?: string | null; title?: string | null; body?: string | null } = {}): DeliveryJob {
  return {
    deliveryId: '0190a0b0-0000-7000-8000-000000000001',
    leaseToken: 'lease',
    attempt: 1,
    channel: 'sms',
    lane: 'normal',
    userId: 'u1',
    notification: {
      id: '0190a0b0-0000-7000-8000-000000000002',
      category: 'account.security',
      priority: 'normal',
      title: over.title === undefined ? 'New sign-in' : over.title,
      body: over.body === undefined ? 'A new device signed in' : over.body,
      data: {},
      groupKey: null,
      createdAt: new Date(),
    },
    user: {
      id: 'u1',
      email: null,
      phone: over.phone === undefined ? '+14155550123' : over.phone,
      timezone: null,
      locale: null,
      webhookUrl: null,
    },
  };
}

describe('TwilioProvider', () => {
  let fake: FakeTwilio;
  let provider: TwilioProvider;
  let answer: (n: number) => TwilioAnswer = () => ({ kind: 'accept' });

  async function setUp(from = '+14155550100', timeoutMs = 2000): Promise<void> {
    fake = await startFakeTwilio((r) => answer(r.nth));
    provider = new TwilioProvider({
      accountSid: fake.accountSid,
      authToken: fake.authToken,
      from,
      baseUrl: `${fake.url}/`,
      timeoutMs,
    });
  }

  afterEach(async () => {
    await provider?.close();
    await fake?.close();
    answer = () => ({ kind: 'accept' });
  });

  it('POSTs To, From and Body with Basic auth to the account; records sid, status and segments', async () => {
    await setUp();
    answer = () => ({ kind: 'accept', numSegments: 1 });
    const r = await provider.send(job());
    expect(fake.refused).toEqual([]);
    expect(fake.received).toHaveLength(1);
    expect(fake.received[0]).toMatchObject({
      to: '+14155550123',
      from: '+14155550100',
      messagingServiceSid: null,
      body: 'New sign-in\nA new device signed in',
    });
    expect(r.ok).toBe(true);
    const detail = (r as { detail: Record<string, unknown> }).detail;
    expect(detail).toMatchObject({
      provider: 'twilio',
      status: 'queued',
      segments: 1,
      encoding: 'GSM-7',
      numSegments: 1,
    });
    expect(detail.sid).toMatch(/^SM[0-9a-f]{32}$/);
  });

  it('sends a messaging service sender as MessagingServiceSid', async () => {
    const mg = `MG${'b'.repeat(32)}`;
    await setUp(mg);
    expect((await provider.send(job())).ok).toBe(true);
    expect(fake.received[0]).toMatchObject({ from: null, messagingServiceSid: mg });
  });

  it('counts segments itself, and leaves numSegments out when Twilio does not report it', async () => {
    await setUp();
    answer = () => ({ kind: 'accept', numSegments: null });
    const r = await provider.send(job({ title: 'Код', body: 'x'.repeat(100) }));
    expect(r).toMatchObject({ ok: true, detail: { segments: 2, encoding: 'UCS-2' } });
    expect((r as { detail: object }).detail).not.toHaveProperty('numSegments');
  });

  it('skips a user without a phone, and a notification with no text, without calling Twilio', async () => {
    await setUp();
    expect(await provider.send(job({ phone: null }))).toEqual({ ok: false, skipped: 'user u1 has no phone' });
    expect(await provider.send(job({ title: null, body: null }))).toMatchObject({
      ok: false,
      skipped: /no title or body/,
    });
    expect(fake.received).toHaveLength(0);
  });

  it.each([
    [400, TWILIO_ERRORS.invalidTo],
    [400, TWILIO_ERRORS.unsubscribed],
  ])('HTTP %s error %o is permanent, with the code and message', async (status, e) => {
    await setUp();
    answer = () => ({ kind: 'error', status, ...e });
    const r = await provider.send(job());
    expect(r).toEqual({
      ok: false,
      permanent: true,
      error: `Twilio answered HTTP ${status}: error ${e.code}: ${e.message}`,
    });
  });

  it.each([
    [401, { code: 20003, message: 'Authenticate' }],
    [404, { code: 20404, message: 'The requested resource was not found' }],
  ])('HTTP %s error %o blames the account, not the message: transient', async (status, e) => {
    await setUp();
    answer = () => ({ kind: 'error', status, ...e });
    expect(await provider.send(job())).toEqual({
      ok: false,
      permanent: false,
      error: `Twilio answered HTTP ${status}: error ${e.code}: ${e.message}`,
    });
  });

  it('429 is transient and honours Retry-After; 5xx is transient', async () => {
    await setUp();
    answer = () => ({
      kind: 'error',
      status: 429,
      code: 20429,
      message: 'Too Many Requests',
      headers: { 'retry-after': '3' },
    });
    expect(await provider.send(job())).toMatchObject({
      ok: false,
      permanent: false,
      retryAfterMs: 3000,
      error: /429.*20429/,
    });
    answer = () => ({ kind: 'raw', status: 503, body: '<html>unavailable</html>' });
    const r = await provider.send(job());
    expect(r).toEqual({ ok: false, permanent: false, error: 'Twilio answered HTTP 503' });
  });

  it('a Twilio that does not answer in time is transient', async () => {
    await setUp('+14155550100', 200);
    answer = () => ({ kind: 'accept', delayMs: 2000 });
    const started = Date.now();
    const r = await provider.send(job());
    expect(r).toMatchObject({ ok: false, permanent: false, error: /timed out/ });
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('a refused connection is transient', async () => {
    await setUp();
    const closed = await new Promise<Server>((r) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => r(s));
    });
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const p = new TwilioProvider({
      accountSid: fake.accountSid,
      authToken: fake.authToken,
      from: '+14155550100',
      baseUrl: `http://127.0.0.1:${port}`,
      timeoutMs: 2000,
    });
    try {
      expect(await p.send(job())).toMatchObject({ ok: false, permanent: false, error: /ECONNREFUSED/ });
    } finally {
      await p.close();
    }
  });

  it('masks the auth token out of an error, even one that echoes it', async () => {
    await setUp();
    answer = () => ({ kind: 'error', status: 400, code: 20001, message: `bad token ${fake.authToken}` });
    const r = await provider.send(job());
    expect(r).toMatchObject({ ok: false, permanent: true });
    expect(JSON.stringify(r)).not.toContain(fake.authToken);
    expect((r as { error: string }).error).toContain('bad token ***');
  });
});

describe('smsText', () => {
  it.each([
    ['Title', 'Body', 'Title\nBody'],
    ['Title', null, 'Title'],
    [null, 'Body', 'Body'],
    [null, null, ''],
  ])('title %s, body %s', (title, body, text) => {
    expect(smsText(job({ title, body }))).toBe(text);
  });
});
