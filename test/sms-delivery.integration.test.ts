/**
 * The SMS channel through Twilio end to end, on both stores, against a local fake of Twilio's
 * Messages API: delivered once with the segment count in the timeline; 5xx retried; a Twilio
 * error such as 21211 permanent and not retried; 429's Retry-After honoured; a user without a phone
 * skipped; and the auth token in no delivery error and no log line.
 *
 * One Herald and one fake per store; each test uses its own phone number, which the fake answers by.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeTwilio, startFakeTwilio, TWILIO_ERRORS, type TwilioAnswer } from './support/fake-twilio.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

const BASE_MS = 200;
const RETRY_ENV = { HERALD_RETRY_BASE_MS: String(BASE_MS), HERALD_RETRY_MAX_ATTEMPTS: '4' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['pglite', 'postgres'] as const)('SMS delivery through Twilio (%s)', (store) => {
  let t: TestHerald;
  let fake: FakeTwilio;
  /** How the fake answers each destination number (by the n-th request for it); default 201. */
  const behaviour = new Map<string, (nth: number) => TwilioAnswer>();
  const logLines: string[] = [];
  let seq = 0;

  beforeAll(async () => {
    fake = await startFakeTwilio((r) => (behaviour.get(r.to) ?? (() => ({ kind: 'accept' })))(r.nth));
    const sink = new Writable({
      write(chunk, _enc, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    t = await startTestHerald({
      store,
      env: {
        ...RETRY_ENV,
        HERALD_TWILIO_ACCOUNT_SID: fake.accountSid,
        HERALD_TWILIO_AUTH_TOKEN: fake.authToken,
        HERALD_TWILIO_FROM: '+14155550100',
        HERALD_TWILIO_BASE_URL: fake.url,
      },
      logger: pino({ level: 'trace' }, sink),
    });
  });

  afterAll(async () => {
    await t?.stop();
    await fake?.close();
  });

  /** A new user with a phone of its own, which the fake answers with `answer`. */
  async function smsUser(answer?: (nth: number) => TwilioAnswer): Promise<{ id: string; phone: string }> {
    const n = ++seq;
    const id = `sms-${store}-${n}`;
    const phone = `+1415${store === 'pglite' ? 1 : 2}00${String(n).padStart(4, '0')}`;
    if (answer) behaviour.set(phone, answer);
    const r = await t.api('PUT', `/v1/users/${id}`, { phone });
    expect(r.status).toBe(200);
    return { id, phone };
  }

  async function notify(userId: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await t.api('POST', '/v1/notifications', {
      to: [userId],
      category: 'account.security',
      channels: ['sms'],
      title: 'New sign-in',
      body: 'A new device signed in',
      ...extra,
    });
    expect(r.status).toBe(202);
    return r.json.id as string;
  }

  async function settledAs(id: string, status: string) {
    let last: any = null;
    try {
      return await eventually(async () => {
        last = (await t.api('GET', `/v1/notifications/${id}`)).json;
        return last.deliveries[0]?.status === status ? last : null;
      }, `delivery of ${id} to be ${status}`);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last?.deliveries)}`);
    }
  }

  const requestsTo = (phone: string) => fake.received.filter((r) => r.to === phone);

  it('sends one SMS: title and body from the configured number; sid, status and segments in the timeline', async () => {
    const user = await smsUser(() => ({ kind: 'accept', numSegments: 2 }));
    // 100 Cyrillic letters and the title: UCS-2, more than 70 units, so two segments.
    const id = await notify(user.id, { title: 'Код', body: 'Ж'.repeat(100) });
    const n = await settledAs(id, 'sent');
    expect(n.status).toBe('done');
    expect(n.deliveries[0]).toMatchObject({
      userId: user.id,
      channel: 'sms',
      status: 'sent',
      attempts: 1,
      lastError: null,
    });

    await sleep(2 * BASE_MS);
    const got = requestsTo(user.phone);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ from: '+14155550100', body: `Код\n${'Ж'.repeat(100)}` });
    expect(fake.refused).toEqual([]);

    const sent = n.timeline.find((e: any) => e.event === 'sent');
    expect(sent.detail).toMatchObject({
      provider: 'twilio',
      status: 'queued',
      segments: 2,
      encoding: 'UCS-2',
      numSegments: 2,
    });
    expect(sent.detail.sid).toMatch(/^SM[0-9a-f]{32}$/);
  });

  it('a 500 is retried after the backoff, then the SMS is sent', async () => {
    const user = await smsUser((nth) =>
      nth === 1 ? { kind: 'error', status: 500, code: 20500, message: 'Internal Server Error' } : { kind: 'accept' },
    );
    const id = await notify(user.id);
    const n = await settledAs(id, 'sent');
    expect(n.deliveries[0].attempts).toBe(2);
    const got = requestsTo(user.phone);
    expect(got).toHaveLength(2);
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(BASE_MS / 2);
    const failed = n.timeline.filter((e: any) => e.event === 'attempt_failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].detail.error).toMatch(/HTTP 500/);
    expect(n.timeline.find((e: any) => e.event === 'sent').detail).toMatchObject({ segments: 1, encoding: 'GSM-7' });
  });

  it("Twilio's 400 21211 (invalid 'To') fails the delivery at once, with the code and message, and is not retried", async () => {
    const user = await smsUser(() => ({ kind: 'error', status: 400, ...TWILIO_ERRORS.invalidTo }));
    const id = await notify(user.id);
    const n = await settledAs(id, 'failed');
    expect(n.status).toBe('failed');
    expect(n.deliveries[0].attempts).toBe(1);
    expect(n.deliveries[0].lastError).toBe(`Twilio answered HTTP 400: error 21211: ${TWILIO_ERRORS.invalidTo.message}`);
    const letters = (await t.api('GET', '/v1/dead-letters?limit=500')).json.items;
    expect(letters.find((l: any) => l.id === n.deliveries[0].id)).toMatchObject({ status: 'failed', attempts: 1 });
    // Longer than the first backoff window: a retry would have come by now.
    await sleep(3 * BASE_MS);
    expect(requestsTo(user.phone)).toHaveLength(1);
  });

  it('429 is retried no sooner than its Retry-After', async () => {
    const user = await smsUser((nth) =>
      nth === 1
        ? { kind: 'error', status: 429, code: 20429, message: 'Too Many Requests', headers: { 'retry-after': '1' } }
        : { kind: 'accept' },
    );
    const id = await notify(user.id);
    const n = await settledAs(id, 'sent');
    expect(n.deliveries[0].attempts).toBe(2);
    const got = requestsTo(user.phone);
    expect(got).toHaveLength(2);
    // Without Retry-After the retry would come within 200 ms; Twilio asked for 1 s.
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(1_000);
    expect(n.timeline.find((e: any) => e.event === 'attempt_failed').detail.error).toMatch(/429.*20429/);
  });

  it('a user without a phone is skipped with the reason, and Twilio is not called', async () => {
    const id = `sms-${store}-nophone`;
    expect((await t.api('PUT', `/v1/users/${id}`, { email: 'a@example.com' })).status).toBe(200);
    const before = fake.received.length;
    const nid = await notify(id);
    const n = await settledAs(nid, 'skipped');
    expect(n.deliveries[0].lastError).toBe(`user ${id} has no phone`);
    expect(n.status).toBe('done');
    expect(fake.received.length).toBe(before);
  });

  it('the auth token is in no delivery error, no timeline and no log line', async () => {
    const user = await smsUser(() => ({
      kind: 'error',
      status: 400,
      code: 20001,
      message: `Invalid credentials ${fake.authToken}`,
    }));
    const id = await notify(user.id);
    const n = await settledAs(id, 'failed');
    expect(n.deliveries[0].lastError).toContain('Invalid credentials ***');
    const all = await t.api('GET', '/v1/dead-letters?limit=500');
    expect(JSON.stringify(n)).not.toContain(fake.authToken);
    expect(JSON.stringify(all.json)).not.toContain(fake.authToken);
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(fake.authToken);
    expect(logLines.join('')).not.toContain(Buffer.from(`${fake.accountSid}:${fake.authToken}`).toString('base64'));
  });

  it('without the Twilio settings, SMS deliveries are skipped as having no provider', async () => {
    const plain = await startTestHerald({ store });
    try {
      expect((await plain.api('PUT', '/v1/users/sms-plain', { phone: '+14155550199' })).status).toBe(200);
      const r = await plain.api('POST', '/v1/notifications', {
        to: ['sms-plain'],
        category: 'account.security',
        channels: ['sms'],
        title: 'Hi',
      });
      expect(r.status).toBe(202);
      const n = await eventually(async () => {
        const v = (await plain.api('GET', `/v1/notifications/${r.json.id}`)).json;
        return v.deliveries[0]?.status === 'skipped' ? v : null;
      }, 'the SMS delivery to be skipped');
      expect(n.deliveries[0].lastError).toBe('no provider is configured for channel sms');
      expect(fake.received.some((q) => q.to === '+14155550199')).toBe(false);
    } finally {
      await plain.stop();
    }
  });
});
