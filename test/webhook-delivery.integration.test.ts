/**
 * The webhook channel end to end, on both stores: what a receiver sees (signed requests, a stable
 * `webhook-id`, the same body bytes on every attempt, backoff between attempts, Retry-After
 * honoured) and what the producer sees (attempts, timeline, dead letters, replay).
 *
 * One Herald and one receiver per store; each test uses its own users, and the receiver answers
 * according to the user a request is for.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, TEST_WEBHOOK_SECRET, type TestHerald } from './support/herald.ts';
import { type ReceivedWebhook, type Receiver, type Respond, startReceiver } from './support/receiver.ts';

const BASE_MS = 200;
const MAX_ATTEMPTS = 4;
/** Only the Herald of the timeout test uses it: on a loaded machine a first request can take longer. */
const TIMEOUT_MS = 300;
const RETRY_ENV = { HERALD_RETRY_BASE_MS: String(BASE_MS), HERALD_RETRY_MAX_ATTEMPTS: String(MAX_ATTEMPTS) };

/** Standard Webhooks, computed here independently of src/. */
function expectedSignature(id: string, timestamp: string, body: string): string {
  const key = Buffer.from(TEST_WEBHOOK_SECRET.slice('whsec_'.length), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

describe.each(['pglite', 'postgres'] as const)('webhook delivery (%s)', (store) => {
  let t: TestHerald;
  let receiver: Receiver;
  /** How the receiver answers requests for each user; unknown users get 200. */
  const behaviour = new Map<string, Respond>();
  let userSeq = 0;

  beforeAll(async () => {
    receiver = await startReceiver((req, n) => (behaviour.get(req.json?.userId) ?? (() => 200))(req, n));
    t = await startTestHerald({ store, env: RETRY_ENV });
  });

  afterAll(async () => {
    await t?.stop();
    await receiver?.close();
  });

  /** A new user whose webhookUrl is the receiver, answered by `respond`. */
  async function webhookUser(respond: Respond): Promise<string> {
    const id = `wh-${store}-${++userSeq}`;
    behaviour.set(id, respond);
    const r = await t.api('PUT', `/v1/users/${id}`, { webhookUrl: receiver.url });
    expect(r.status).toBe(200);
    return id;
  }

  async function notify(userId: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await t.api('POST', '/v1/notifications', {
      to: [userId],
      category: 'account.security',
      channels: ['webhook'],
      title: 'New sign-in',
      body: 'A new device signed in',
      data: { device: 'laptop', n: 1 },
      ...extra,
    });
    expect(r.status).toBe(202);
    return r.json.id as string;
  }

  async function getNotification(id: string) {
    const r = await t.api('GET', `/v1/notifications/${id}`);
    expect(r.status).toBe(200);
    return r.json;
  }

  /** Waits until the single delivery of notification `id` reaches `status`; returns the notification. */
  async function settledAs(id: string, status: string, timeoutMs = 10_000) {
    let last: any = null;
    try {
      return await eventually(
        async () => {
          last = await getNotification(id);
          return last.deliveries[0]?.status === status ? last : null;
        },
        `delivery of ${id} to be ${status}`,
        timeoutMs,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last?.deliveries)}`);
    }
  }

  const requestsFor = (userId: string): ReceivedWebhook[] => receiver.received.filter((r) => r.json?.userId === userId);

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  async function deadLetters(): Promise<any[]> {
    const r = await t.api('GET', '/v1/dead-letters?limit=500');
    expect(r.status).toBe(200);
    return r.json.items;
  }

  it('retries 500, 500, then delivers on the 3rd attempt: same id and body, valid signatures, backoff between', async () => {
    const user = await webhookUser((_req, n) => (n <= 2 ? 500 : 200));
    const id = await notify(user);
    const n = await settledAs(id, 'sent');

    const got = requestsFor(user);
    expect(got).toHaveLength(3);
    const [a1, a2, a3] = got as [ReceivedWebhook, ReceivedWebhook, ReceivedWebhook];
    // Backoff windows with base 200: attempt 1 → [100, 200] ms, attempt 2 → [200, 400] ms.
    expect(a2.at - a1.at).toBeGreaterThanOrEqual(BASE_MS / 2);
    expect(a3.at - a2.at).toBeGreaterThanOrEqual(BASE_MS);

    const deliveryId = n.deliveries[0].id;
    for (const r of got) {
      expect(r.id).toBe(deliveryId);
      expect(r.body).toBe(a1.body);
      expect(r.signatureValid).toBe(true);
      const ts = String(r.headers['webhook-timestamp']);
      expect(r.headers['webhook-signature']).toBe(expectedSignature(r.id, ts, r.body));
      expect(Math.abs(Number(ts) - r.at / 1000)).toBeLessThan(5);
    }
    expect(got.map((r) => r.headers['herald-attempt'])).toEqual(['1', '2', '3']);

    expect(n.status).toBe('done');
    expect(n.deliveries[0]).toMatchObject({ userId: user, channel: 'webhook', status: 'sent', attempts: 3 });
    const events = n.timeline.filter((e: any) => e.event === 'attempt_failed' || e.event === 'sent');
    expect(events.map((e: any) => e.event)).toEqual(['attempt_failed', 'attempt_failed', 'sent']);
    for (const e of events.slice(0, 2)) expect(e.detail.error).toMatch(/500/);
    expect(events.map((e: any) => e.detail.attempt)).toEqual([1, 2, 3]);
  });

  it('sends the notification as JSON, as API.md describes', async () => {
    const user = await webhookUser(() => 200);
    const id = await notify(user, { priority: 'high', data: { postId: 42, tags: ['a', 'é'] } });
    const n = await settledAs(id, 'sent');
    const [r] = requestsFor(user);
    expect(r?.headers['content-type']).toMatch(/^application\/json/);
    expect(r?.json).toMatchObject({
      id,
      userId: user,
      category: 'account.security',
      priority: 'high',
      title: 'New sign-in',
      body: 'A new device signed in',
      data: { postId: 42, tags: ['a', 'é'] },
      createdAt: n.createdAt,
    });
    expect(n.deliveries[0].attempts).toBe(1);
  });

  it('after the last attempt the delivery is dead; a replay sends it exactly once more, and only once', async () => {
    let recovered = false;
    const user = await webhookUser(() => (recovered ? 200 : 500));
    const id = await notify(user);
    const dead = await settledAs(id, 'dead');
    const delivery = dead.deliveries[0];
    expect(delivery.attempts).toBe(MAX_ATTEMPTS);
    expect(delivery.lastError).toMatch(/500/);
    expect(dead.status).toBe('failed');
    expect(requestsFor(user)).toHaveLength(MAX_ATTEMPTS);

    const listed = (await deadLetters()).find((d) => d.id === delivery.id);
    expect(listed).toMatchObject({
      notificationId: id,
      userId: user,
      channel: 'webhook',
      status: 'dead',
      attempts: MAX_ATTEMPTS,
    });
    expect(listed.lastError).toMatch(/500/);

    recovered = true;
    const replay = await t.api('POST', `/v1/dead-letters/${delivery.id}/replay`);
    expect(replay.status).toBe(200);
    expect(replay.json).toEqual({ id: delivery.id, status: 'pending' });
    const sent = await settledAs(id, 'sent');
    expect(sent.status).toBe('done');
    expect(sent.deliveries[0], JSON.stringify(sent.timeline)).toMatchObject({ status: 'sent', attempts: 1 });
    expect(sent.timeline.map((e: any) => e.event)).toContain('replayed');
    expect((await deadLetters()).some((d) => d.id === delivery.id)).toBe(false);

    await sleep(2 * BASE_MS);
    const got = requestsFor(user);
    expect(got).toHaveLength(MAX_ATTEMPTS + 1);
    expect(new Set(got.map((r) => r.id))).toEqual(new Set([delivery.id]));
    expect(new Set(got.map((r) => r.body)).size).toBe(1);

    const again = await t.api('POST', `/v1/dead-letters/${delivery.id}/replay`);
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('HERALD_ERR_NOT_REPLAYABLE');
    const missing = await t.api('POST', '/v1/dead-letters/00000000-0000-7000-8000-000000000000/replay');
    expect(missing.status).toBe(404);
    await sleep(2 * BASE_MS);
    expect(requestsFor(user)).toHaveLength(MAX_ATTEMPTS + 1);
  });

  it('400 and 410 are permanent: failed after exactly one attempt, and parked as dead letters', async () => {
    const u400 = await webhookUser(() => 400);
    const u410 = await webhookUser(() => 410);
    const [n400, n410] = await Promise.all([notify(u400), notify(u410)]);
    const [f400, f410] = await Promise.all([settledAs(n400, 'failed'), settledAs(n410, 'failed')]);
    expect(f400.deliveries[0]).toMatchObject({ attempts: 1 });
    expect(f400.deliveries[0].lastError).toMatch(/400/);
    expect(f410.deliveries[0]).toMatchObject({ attempts: 1 });
    expect(f410.deliveries[0].lastError).toMatch(/410/);
    expect(f400.timeline.some((e: any) => e.event === 'attempt_failed')).toBe(false);

    const letters = await deadLetters();
    for (const d of [f400.deliveries[0], f410.deliveries[0]]) {
      expect(letters.find((l) => l.id === d.id)).toMatchObject({ status: 'failed', attempts: 1 });
    }
    // Longer than the first backoff window: a retry would have come by now.
    await sleep(3 * BASE_MS);
    expect(requestsFor(u400)).toHaveLength(1);
    expect(requestsFor(u410)).toHaveLength(1);
  });

  it('408 and 429 are retried; Retry-After is honoured', async () => {
    const u408 = await webhookUser((_r, n) => (n === 1 ? 408 : 200));
    const u429 = await webhookUser((_r, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : 200));
    const [n408, n429] = await Promise.all([notify(u408), notify(u429)]);
    const [s408, s429] = await Promise.all([settledAs(n408, 'sent'), settledAs(n429, 'sent')]);
    expect(s408.deliveries[0].attempts).toBe(2);
    expect(s429.deliveries[0].attempts).toBe(2);

    const r408 = requestsFor(u408);
    expect(r408).toHaveLength(2);
    expect(r408[1]!.at - r408[0]!.at).toBeGreaterThanOrEqual(BASE_MS / 2);
    const r429 = requestsFor(u429);
    expect(r429).toHaveLength(2);
    // Without Retry-After the retry would come within 200 ms; the receiver asked for 1 s.
    expect(r429[1]!.at - r429[0]!.at).toBeGreaterThanOrEqual(1_000);
    const failed = s429.timeline.find((e: any) => e.event === 'attempt_failed');
    expect(failed.detail.error).toMatch(/429/);
  });

  it('a receiver that hangs past HERALD_WEBHOOK_TIMEOUT_MS is retried without waiting for it', async () => {
    // A Herald of its own, with a short timeout; the receiver hangs on the first request only.
    const hangMs = 5_000;
    const quick = await startTestHerald({
      store,
      env: { ...RETRY_ENV, HERALD_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS) },
    });
    try {
      const user = `wh-${store}-hang`;
      behaviour.set(user, (_r, n) => (n === 1 ? { status: 200, delayMs: hangMs } : 200));
      expect((await quick.api('PUT', `/v1/users/${user}`, { webhookUrl: receiver.url })).status).toBe(200);
      const started = Date.now();
      const posted = await quick.api('POST', '/v1/notifications', {
        to: [user],
        category: 'account.security',
        channels: ['webhook'],
        title: 'Hello',
      });
      expect(posted.status).toBe(202);
      const n = await eventually(async () => {
        const r = await quick.api('GET', `/v1/notifications/${posted.json.id}`);
        return r.json.deliveries[0]?.status === 'sent' ? r.json : null;
      }, 'the delivery to be sent after a timeout');
      const got = requestsFor(user);
      expect(got.length).toBeGreaterThanOrEqual(2);
      expect(n.deliveries[0].attempts).toBe(got.length);
      expect(new Set(got.map((r) => r.id)).size).toBe(1);
      expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(TIMEOUT_MS);
      // The retry did not wait for the hung answer.
      expect(got[1]!.at - started).toBeLessThan(hangMs);
      const failed = n.timeline.find((e: any) => e.event === 'attempt_failed');
      expect(failed.detail.error).toMatch(/timed out|timeout/i);
    } finally {
      await quick.stop();
    }
  });

  it('a user without a webhookUrl is skipped at once, with the reason, and is no dead letter', async () => {
    const noUrl = `wh-${store}-nourl`;
    expect((await t.api('PUT', `/v1/users/${noUrl}`, { email: 'x@example.com' })).status).toBe(200);
    const unknown = `wh-${store}-unknown`;
    const [a, b] = await Promise.all([notify(noUrl), notify(unknown)]);
    const [fa, fb] = await Promise.all([settledAs(a, 'skipped'), settledAs(b, 'skipped')]);
    const letters = (await t.api('GET', '/v1/dead-letters?limit=500')).json.items;
    for (const [n, user] of [
      [fa, noUrl],
      [fb, unknown],
    ] as const) {
      expect(n.status).toBe('done');
      expect(n.deliveries[0]).toMatchObject({ userId: user, status: 'skipped', attempts: 1 });
      expect(n.deliveries[0].lastError).toMatch(/webhookUrl/);
      expect(n.deliveries[0].lastError).toContain(user);
      expect(letters.some((l: { id: string }) => l.id === n.deliveries[0].id)).toBe(false);
    }
    expect(receiver.received.some((r) => r.json?.userId === noUrl || r.json?.userId === unknown)).toBe(false);
  });
});
