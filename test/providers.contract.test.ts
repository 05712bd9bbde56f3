/**
 * The ChannelProvider contract (src/core/ports.ts), run against every provider and, through the push
 * channel with an in-memory device list, every push sender — each against its local fake
 * (test/support). One table, PROVIDERS: an entry says how to build the provider against its fake and
 * what the fake answers to accept, fail transiently, refuse permanently, say a push token is dead, and
 * be too slow. The same checks run on every entry:
 *
 * - accepted → `{ok: true}` with a JSON-serialisable detail;
 * - transient → `{ok: false, permanent: false}`; with Retry-After → `retryAfterMs`;
 * - permanent → `{ok: false, permanent: true}`;
 * - a dead push token → permanent, and the device is gone after that one attempt;
 * - unreachable (connection refused) or too slow → transient, within the timeout and a margin;
 * - a user without an address on the channel → `skipped`, and nothing is sent;
 * - `send` never throws, and no result ever shows the provider's secret;
 * - a retry of a delivery carries the same idempotency identity, where the protocol has one.
 *
 * Adding a provider is one entry. Every test starts its own fake, so counts start at zero.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { GuardedHttpClient } from '../src/channels/egress-http.ts';
import { EgressPolicy } from '../src/channels/egress-policy.ts';
import { readServiceAccount } from '../src/channels/fcm-service-account.ts';
import { ChatProvider } from '../src/channels/provider-chat.ts';
import { PushProvider } from '../src/channels/provider-push.ts';
import { SmtpProvider } from '../src/channels/provider-smtp.ts';
import { TwilioProvider } from '../src/channels/provider-twilio.ts';
import { WebhookProvider } from '../src/channels/provider-webhook.ts';
import { ApnsSender } from '../src/channels/push-apns.ts';
import { FcmSender } from '../src/channels/push-fcm.ts';
import type { PushSender } from '../src/channels/push-sender.ts';
import { WebPushSender } from '../src/channels/push-webpush.ts';
import type { Device } from '../src/core/devices.ts';
import type { ChannelProvider, SendResult } from '../src/core/ports-channels.ts';
import type { Channel, DeliveryJob, JobUser } from '../src/core/types.ts';
import { type ApnsAnswer, makeApnsTestKey, startFakeApns } from './support/fake-apns.ts';
import { type ChatAnswer, SLACK_ERRORS, startFakeChat } from './support/fake-chat.ts';
import { type FcmAnswer, startFakeFcm } from './support/fake-fcm.ts';
import { startFakeTwilio, TWILIO_ERRORS, type TwilioAnswer } from './support/fake-twilio.ts';
import { type PushAnswer, startFakeWebPush } from './support/fake-webpush.ts';
import { startReceiver } from './support/receiver.ts';
import { type SmtpAnswer, startSmtpServer } from './support/smtp-server.ts';

/**
 * Every provider's send timeout here; the slow fakes' delay, and a late answer that is still within
 * the timeout; the margin a timed-out send may take beyond it.
 */
const TIMEOUT_MS = 800;
const SLOW_MS = 5 * TIMEOUT_MS;
const WITHIN_MS = TIMEOUT_MS - 200;
const MARGIN_MS = 700;
/** What a Retry-After answer says: 7 seconds. */
const RETRY_AFTER = { 'retry-after': '7' };
const LOOPBACK = new EgressPolicy(['127.0.0.0/8']);

/** A provider against its fake. `A` is what the fake answers, in the fake's own terms. */
interface Rig<A> {
  provider: ChannelProvider;
  /** Delivery number `n` to a user who has an address on the channel; the same `n` again is a retry. */
  job(n: number): DeliveryJob;
  /** A delivery to a user without an address on the channel. */
  jobWithoutAddress(): DeliveryJob;
  /** Requests that reached the fake. */
  requests(): number;
  /** The idempotency identity of each request that reached the fake, in order (entries with one). */
  identities(): string[];
  /** What no result may show. */
  secrets(): string[];
  /** Push: the user's devices now. */
  devices?(): Device[];
  /** An error answer in which the fake repeats a secret it knows; absent where it knows none. */
  leak?(): A;
  /** The same provider set up for a port nobody listens on (connection refused). */
  unreachable(): Promise<{ provider: ChannelProvider; job: DeliveryJob; close(): Promise<void> }>;
  close(): Promise<void>;
}

interface Entry<A> {
  name: string;
  /** What names a delivery to its receiver across retries; null: the protocol has no such thing. */
  identity: string | null;
  /** Starts the fake, answering each request with `answer()` at that moment, and the provider against it. */
  start(answer: () => A): Promise<Rig<A>>;
  answers: {
    accept: A;
    /** Must be transient, by label. */
    transient: Record<string, A>;
    /** A 429 saying `Retry-After: 7`; null where the protocol has no Retry-After. */
    retryAfter: A | null;
    /** Must be permanent, by label. */
    permanent: Record<string, A>;
    /** Push: the service says the device token is dead, by label. */
    dead?: Record<string, A>;
    /** Accepts after WITHIN_MS: late, but within the timeout. */
    within: A;
    /** Accepts, but only after SLOW_MS (or never). */
    slow: A;
  };
}

/** Type-checks an entry against its fake's answers; the table holds them side by side. */
function entry<A>(e: Entry<A>): Entry<unknown> {
  return e as unknown as Entry<unknown>;
}

// ——— the table ———

const PROVIDERS: Entry<unknown>[] = [
  entry<{ reply: SmtpAnswer; delayMs?: number }>({
    name: 'smtp',
    identity: 'Message-ID',
    async start(answer) {
      const pass = `smtp-${randomBytes(9).toString('base64url')}/+=`;
      const server = await startSmtpServer({
        user: 'herald',
        pass,
        respond: () => answer().reply,
        delayMs: () => answer().delayMs ?? 0,
      });
      const smtp = (port: number) =>
        new SmtpProvider({
          url: `smtp://herald:${encodeURIComponent(pass)}@127.0.0.1:${port}`,
          from: 'Herald <herald@example.com>',
          timeoutMs: TIMEOUT_MS,
        });
      const provider = smtp(server.port);
      const job = (n: number) => deliveryJob('email', n, { email: 'ada@example.com' });
      return {
        provider,
        job,
        jobWithoutAddress: () => deliveryJob('email', 1, { email: null }),
        requests: () => server.received.length,
        identities: () => server.received.map((m) => m.parsed.messageId ?? ''),
        secrets: () => [pass, encodeURIComponent(pass)],
        leak: () => ({ reply: { code: 554, text: `5.7.1 refused for herald:${pass}` } }),
        async unreachable() {
          const p = smtp(await closedPort());
          return { provider: p, job: job(1), close: () => p.close() };
        },
        async close() {
          await provider.close();
          await server.close();
        },
      };
    },
    answers: {
      accept: { reply: 250 },
      transient: {
        '451 local error': { reply: { code: 451, text: '4.3.0 try again later' } },
        '452 insufficient storage': { reply: { code: 452, text: '4.3.1 mailbox full, try later' } },
      },
      retryAfter: null, // SMTP has no Retry-After
      permanent: {
        '550 mailbox unavailable': { reply: { code: 550, text: '5.1.1 no such user' } },
        '554 transaction failed': { reply: { code: 554, text: '5.7.1 message refused' } },
      },
      within: { reply: 250, delayMs: WITHIN_MS },
      slow: { reply: 250, delayMs: SLOW_MS },
    },
  }),

  entry<TwilioAnswer>({
    name: 'twilio',
    identity: null, // Twilio's Messages API takes no idempotency key
    async start(answer) {
      const fake = await startFakeTwilio(() => answer());
      const twilio = (baseUrl: string) =>
        new TwilioProvider({
          accountSid: fake.accountSid,
          authToken: fake.authToken,
          from: '+14155550100',
          baseUrl,
          timeoutMs: TIMEOUT_MS,
        });
      const provider = twilio(fake.url);
      const job = (n: number) => deliveryJob('sms', n, { phone: '+14155550123' });
      return {
        provider,
        job,
        jobWithoutAddress: () => deliveryJob('sms', 1, { phone: null }),
        requests: () => fake.received.length,
        identities: () => [],
        secrets: () => [fake.authToken],
        leak: () => ({ kind: 'error', status: 400, code: 20001, message: `bad credentials ${fake.authToken}` }),
        async unreachable() {
          const p = twilio(`http://127.0.0.1:${await closedPort()}`);
          return { provider: p, job: job(1), close: () => p.close() };
        },
        async close() {
          await provider.close();
          await fake.close();
        },
      };
    },
    answers: {
      accept: { kind: 'accept', numSegments: 1 },
      transient: {
        '503 service unavailable': { kind: 'error', status: 503, code: 20503, message: 'Service Unavailable' },
        '401 account refused (the operator fixes it)': {
          kind: 'error',
          status: 401,
          code: 20003,
          message: 'Authenticate',
        },
      },
      retryAfter: { kind: 'error', status: 429, code: 20429, message: 'Too Many Requests', headers: RETRY_AFTER },
      permanent: {
        '400 invalid To': { kind: 'error', status: 400, ...TWILIO_ERRORS.invalidTo },
        '400 unsubscribed recipient': { kind: 'error', status: 400, ...TWILIO_ERRORS.unsubscribed },
      },
      within: { kind: 'accept', delayMs: WITHIN_MS },
      slow: { kind: 'accept', delayMs: SLOW_MS },
    },
  }),

  entry<{ status: number; delayMs?: number; headers?: Record<string, string> }>({
    name: 'webhook',
    identity: 'webhook-id',
    async start(answer) {
      const secret = `whsec_${randomBytes(24).toString('base64')}`;
      const receiver = await startReceiver(() => answer(), secret);
      const provider = new WebhookProvider({ secret, timeoutMs: TIMEOUT_MS, egress: LOOPBACK });
      return {
        provider,
        job: (n) => deliveryJob('webhook', n, { webhookUrl: receiver.url }),
        jobWithoutAddress: () => deliveryJob('webhook', 1, { webhookUrl: null }),
        requests: () => receiver.received.length,
        identities: () => receiver.received.map((r) => r.id),
        secrets: () => [secret, secret.slice('whsec_'.length)],
        async unreachable() {
          const url = `http://127.0.0.1:${await closedPort()}/hook`;
          return { provider, job: deliveryJob('webhook', 1, { webhookUrl: url }), close: async () => {} };
        },
        async close() {
          await provider.close();
          await receiver.close();
        },
      };
    },
    answers: {
      accept: { status: 204 },
      transient: { '503': { status: 503 }, '500': { status: 500 }, '408': { status: 408 } },
      retryAfter: { status: 429, headers: RETRY_AFTER },
      permanent: {
        '400': { status: 400 },
        '410': { status: 410 },
        '301 (redirects are not followed)': { status: 301, headers: { location: 'http://127.0.0.1:1/' } },
      },
      within: { status: 200, delayMs: WITHIN_MS },
      slow: { status: 200, delayMs: SLOW_MS },
    },
  }),

  entry<ChatAnswer>({
    name: 'chat',
    identity: null, // Slack-compatible incoming webhooks take no idempotency key
    async start(answer) {
      const fake = await startFakeChat(() => answer());
      const provider = new ChatProvider({
        timeoutMs: TIMEOUT_MS,
        egress: LOOPBACK,
        users: { getUser: async () => null },
      });
      // A Slack webhook URL is a credential: its path is the token.
      const token = `T0CONTRACT-B0CONTRACT-${randomBytes(12).toString('hex')}`;
      return {
        provider,
        job: (n) => deliveryJob('chat', n, { chatWebhookUrl: fake.url(token) }),
        jobWithoutAddress: () => deliveryJob('chat', 1, { chatWebhookUrl: null }),
        requests: () => fake.received.length,
        identities: () => [],
        secrets: () => [token],
        async unreachable() {
          const url = `http://127.0.0.1:${await closedPort()}/services/${token}`;
          return { provider, job: deliveryJob('chat', 1, { chatWebhookUrl: url }), close: async () => {} };
        },
        async close() {
          await provider.close();
          await fake.close();
        },
      };
    },
    answers: {
      accept: { status: 200, text: 'ok' },
      transient: {
        '503': { status: 503, text: 'service_unavailable' },
        '500': { status: 500, text: 'internal_error' },
      },
      retryAfter: { status: 429, text: 'rate_limited', headers: RETRY_AFTER },
      permanent: {
        '404 no_service': SLACK_ERRORS.noService,
        '410 channel_is_archived': SLACK_ERRORS.archived,
        '403 action_prohibited': SLACK_ERRORS.prohibited,
        '400 invalid_payload': SLACK_ERRORS.invalidPayload,
      },
      within: { status: 200, text: 'ok', delayMs: WITHIN_MS },
      slow: { status: 200, text: 'ok', delayMs: SLOW_MS },
    },
  }),

  entry<PushAnswer>({
    name: 'push: webpush',
    identity: 'the notification id in the payload',
    async start(answer) {
      const keys = webpush.generateVAPIDKeys();
      const vapid = { ...keys, subject: 'mailto:ops@example.com' };
      const fake = await startFakeWebPush({ vapidPublicKey: vapid.publicKey, subject: vapid.subject });
      const sub = fake.subscribe(() => answer());
      const sender = new WebPushSender({
        vapid,
        http: new GuardedHttpClient({ policy: LOOPBACK }),
        timeoutMs: TIMEOUT_MS,
      });
      const device = (endpoint: string) => pushDevice({ provider: 'webpush', token: { endpoint, keys: sub.keys } });
      return pushRig(sender, device(sub.endpoint), {
        requests: () => fake.received.length,
        identities: () => fake.received.map((r) => String(r.payload?.id)),
        secrets: () => [vapid.privateKey],
        async unreachable() {
          const closed = device(`http://127.0.0.1:${await closedPort()}/push/1`);
          return { senders: [sender], device: closed };
        },
        close: () => fake.close(),
      });
    },
    answers: {
      accept: { status: 201 },
      transient: { '503': { status: 503 }, '500': { status: 500 }, '408': { status: 408 } },
      retryAfter: { status: 429, headers: RETRY_AFTER },
      permanent: {
        '400': { status: 400, body: 'bad request' },
        '403 (VAPID refused)': { status: 403 },
        '413': { status: 413 },
      },
      dead: { '410 gone': { status: 410 }, '404 not found': { status: 404 } },
      within: { status: 201, delayMs: WITHIN_MS },
      slow: { status: 201, delayMs: SLOW_MS },
    },
  }),

  entry<FcmAnswer>({
    name: 'push: fcm',
    identity: 'the notification id in the data',
    async start(answer) {
      const fake = await startFakeFcm({ answer: () => answer() });
      const serviceAccount = readServiceAccount(fake.serviceAccountPath);
      const fcm = (baseUrl: string, tokenUri: string) =>
        new FcmSender({ serviceAccount: { ...serviceAccount, tokenUri }, baseUrl, timeoutMs: TIMEOUT_MS });
      const sender = fcm(fake.url, serviceAccount.tokenUri);
      const device = pushDevice({ provider: 'fcm', token: `fcm-${randomBytes(16).toString('hex')}` });
      return pushRig(sender, device, {
        requests: () => fake.received.length,
        identities: () => fake.received.map((r) => String((r.message.data as Record<string, unknown>)?.id)),
        secrets: () => [...pemLines(serviceAccount.privateKey), ...fake.issued],
        leak: () => ({
          kind: 'error',
          status: 400,
          googleStatus: 'INVALID_ARGUMENT',
          message: `Request carried Bearer ${fake.issued.at(-1)}`,
        }),
        async unreachable() {
          const closed = `http://127.0.0.1:${await closedPort()}`;
          return { senders: [fcm(closed, `${closed}/token`)], device };
        },
        close: () => fake.close(),
      });
    },
    answers: {
      accept: { kind: 'accept' },
      transient: {
        '503 UNAVAILABLE': { kind: 'error', status: 503, googleStatus: 'UNAVAILABLE', message: 'unavailable' },
        '500 INTERNAL': { kind: 'error', status: 500, googleStatus: 'INTERNAL', message: 'internal error' },
      },
      retryAfter: {
        kind: 'error',
        status: 429,
        googleStatus: 'RESOURCE_EXHAUSTED',
        errorCode: 'QUOTA_EXCEEDED',
        message: 'quota exceeded',
        headers: RETRY_AFTER,
      },
      permanent: {
        '403 SENDER_ID_MISMATCH': {
          kind: 'error',
          status: 403,
          googleStatus: 'PERMISSION_DENIED',
          errorCode: 'SENDER_ID_MISMATCH',
          message: 'SenderId mismatch',
        },
        '400 INVALID_ARGUMENT (not the token)': {
          kind: 'error',
          status: 400,
          googleStatus: 'INVALID_ARGUMENT',
          errorCode: 'INVALID_ARGUMENT',
          message: 'Invalid value at message.android.ttl',
        },
      },
      dead: { UNREGISTERED: { kind: 'unregistered' }, 'invalid registration token': { kind: 'invalid-token' } },
      within: { kind: 'accept', delayMs: WITHIN_MS },
      slow: { kind: 'accept', delayMs: SLOW_MS },
    },
  }),

  entry<ApnsAnswer>({
    name: 'push: apns',
    identity: 'apns-id',
    async start(answer) {
      const key = makeApnsTestKey();
      const topic = 'com.example.herald';
      const fake = await startFakeApns(key, topic, () => answer());
      const apns = (baseUrl: string) =>
        new ApnsSender({
          privateKey: key.privateKeyPem,
          keyId: key.keyId,
          teamId: key.teamId,
          topic,
          baseUrl,
          ca: fake.ca,
          timeoutMs: TIMEOUT_MS,
        });
      const sender = apns(fake.url);
      const device = pushDevice({ provider: 'apns', token: randomBytes(32).toString('hex') });
      return pushRig(sender, device, {
        requests: () => fake.received.length,
        identities: () => fake.received.map((r) => String(r.headers['apns-id'])),
        secrets: () => pemLines(key.privateKeyPem),
        async unreachable() {
          return { senders: [apns(`https://127.0.0.1:${await closedPort()}`)], device };
        },
        async close() {
          await fake.close();
          key.cleanup();
        },
      });
    },
    answers: {
      accept: { status: 200 },
      transient: {
        '503 ServiceUnavailable': { status: 503, reason: 'ServiceUnavailable' },
        '500 InternalServerError': { status: 500, reason: 'InternalServerError' },
        '403 ExpiredProviderToken': { status: 403, reason: 'ExpiredProviderToken' },
      },
      retryAfter: { status: 429, reason: 'TooManyRequests', headers: RETRY_AFTER },
      permanent: {
        '400 PayloadTooLarge': { status: 400, reason: 'PayloadTooLarge' },
        '400 BadExpirationDate': { status: 400, reason: 'BadExpirationDate' },
        '403 BadCertificate': { status: 403, reason: 'BadCertificate' },
      },
      dead: {
        '410 Unregistered': { status: 410, reason: 'Unregistered' },
        '400 BadDeviceToken': { status: 400, reason: 'BadDeviceToken' },
      },
      within: { status: 200, delayMs: WITHIN_MS },
      slow: { status: 'hang' },
    },
  }),
];

// ——— the rules ———

describe.each(PROVIDERS)('provider contract: $name', (e) => {
  let answer: unknown;
  let rig: Rig<unknown>;

  beforeEach(async () => {
    answer = e.answers.accept;
    rig = await e.start(() => answer);
  });
  afterEach(async () => {
    await rig.close();
  });

  /** Sends, checking what every send must hold: it resolves, its result has a known shape and shows no secret. */
  async function send(job: DeliveryJob, provider = rig.provider): Promise<{ r: SendResult; ms: number }> {
    const started = performance.now();
    let r: SendResult;
    try {
      r = await provider.send(job);
    } catch (err) {
      throw new Error(`send threw instead of returning an outcome: ${String(err)}`);
    }
    const ms = performance.now() - started;
    const text = JSON.stringify(r);
    for (const s of rig.secrets()) expect(text.includes(s), `the result shows a secret: ${text}`).toBe(false);
    if (r.ok) expect(r).toEqual({ ok: true, detail: expect.anything() });
    else if ('skipped' in r) expect(r.skipped).toEqual(expect.any(String));
    else expect(r).toMatchObject({ permanent: expect.any(Boolean), error: expect.stringMatching(/\S/) });
    return { r, ms };
  }

  it('accepted → ok, with a JSON-serialisable detail', async () => {
    const { r } = await send(rig.job(1));
    expect(r.ok).toBe(true);
    const detail = (r as { detail: unknown }).detail;
    expect(JSON.parse(JSON.stringify(detail))).toEqual(detail);
    expect(rig.requests()).toBe(1);
  });

  it.each(Object.entries(e.answers.transient))('transient: %s → not ok, not permanent', async (_label, a) => {
    answer = a;
    const { r } = await send(rig.job(1));
    expect(r).toMatchObject({ ok: false, permanent: false });
    expect(rig.requests()).toBeGreaterThanOrEqual(1);
  });

  if (e.answers.retryAfter !== null) {
    const retryAfter = e.answers.retryAfter;
    it('429 with Retry-After: 7 → transient, retryAfterMs 7000', async () => {
      answer = retryAfter;
      const { r } = await send(rig.job(1));
      expect(r).toMatchObject({ ok: false, permanent: false, retryAfterMs: 7000 });
    });
  }

  it.each(Object.entries(e.answers.permanent))('permanent: %s → not ok, permanent', async (_label, a) => {
    answer = a;
    const { r } = await send(rig.job(1));
    expect(r).toMatchObject({ ok: false, permanent: true });
    expect(rig.requests()).toBe(1);
  });

  if (e.answers.dead) {
    it.each(Object.entries(e.answers.dead))(
      'dead token: %s → permanent, and the device is removed after that one attempt',
      async (_label, a) => {
        answer = a;
        const { r } = await send(rig.job(1));
        expect(r).toMatchObject({ ok: false, permanent: true });
        expect(rig.devices?.()).toEqual([]);
        // Never used again: the next delivery finds no device and sends nothing.
        answer = e.answers.accept;
        const { r: next } = await send(rig.job(2));
        expect(next).toMatchObject({ ok: false, skipped: expect.any(String) });
        expect(rig.requests()).toBe(1);
      },
    );
  }

  it(`a late answer within the timeout (after ${WITHIN_MS} ms, timeout ${TIMEOUT_MS} ms) → ok, not cut off early`, async () => {
    answer = e.answers.within;
    const { r, ms } = await send(rig.job(1));
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(WITHIN_MS - 5);
  });

  it('unreachable (connection refused) → transient, within the timeout, never thrown', async () => {
    const target = await rig.unreachable();
    try {
      const { r, ms } = await send(target.job, target.provider);
      expect(r).toMatchObject({ ok: false, permanent: false });
      expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    } finally {
      await target.close();
    }
  });

  it(`too slow (answers after ${SLOW_MS} ms, timeout ${TIMEOUT_MS} ms) → transient, within the timeout and a margin`, async () => {
    answer = e.answers.slow;
    const { r, ms } = await send(rig.job(1));
    expect(r).toMatchObject({ ok: false, permanent: false });
    expect(rig.requests()).toBe(1); // the fake was reached: it was slow, not unreachable
    expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  });

  it('a user without an address on the channel → skipped, nothing sent', async () => {
    const { r } = await send(rig.jobWithoutAddress());
    expect(r).toMatchObject({ ok: false, skipped: expect.any(String) });
    expect(rig.requests()).toBe(0);
  });

  it('no result shows the secret, even when the fake repeats it in its answer', async () => {
    expect(rig.secrets().length).toBeGreaterThan(0);
    await send(rig.job(1)); // a first send: some secrets (FCM access tokens) exist only after one
    const leak = rig.leak?.();
    if (leak !== undefined) {
      answer = leak;
      const { r } = await send(rig.job(2));
      expect(r.ok).toBe(false);
    }
  });

  if (e.identity !== null) {
    it(`a retry of a delivery carries the same ${e.identity}; another delivery another`, async () => {
      answer = Object.values(e.answers.transient)[0];
      expect((await send(rig.job(1))).r).toMatchObject({ ok: false, permanent: false });
      answer = e.answers.accept;
      expect((await send(rig.job(1))).r.ok).toBe(true);
      expect((await send(rig.job(2))).r.ok).toBe(true);
      const [first, retry, other] = rig.identities();
      expect(first).toMatch(/\S/);
      expect(retry).toBe(first);
      expect(other).not.toBe(first);
    });
  }
});

// ——— building blocks ———

/** Delivery `n` on `channel` to a user with the given contact points (none besides them). */
function deliveryJob(channel: Channel, n: number, contact: Partial<JobUser>, userId = 'user-contract'): DeliveryJob {
  const id = (prefix: string) => `0190a0b0-0000-7000-${prefix}-${String(n).padStart(12, '0')}`;
  return {
    deliveryId: id('8000'),
    leaseToken: `lease-${n}`,
    attempt: 1,
    channel,
    lane: 'normal',
    userId,
    notification: {
      id: id('9000'),
      category: 'comment.reply',
      priority: 'normal',
      title: 'Ada replied',
      body: 'Looks good to me',
      data: { thread: 7 },
      groupKey: null,
      createdAt: new Date(),
    },
    user: { id: userId, email: null, phone: null, timezone: null, locale: null, webhookUrl: null, ...contact },
  };
}

const PUSH_USER = 'user-with-device';

function pushDevice(token: Pick<Device, 'provider' | 'token'>): Device {
  return {
    ...token,
    id: `dev-${randomBytes(4).toString('hex')}`,
    userId: PUSH_USER,
    createdAt: new Date(),
    lastUsedAt: null,
  } as Device;
}

/** The push channel with one sender and an in-memory device list holding `device` for PUSH_USER. */
function pushChannel(sender: PushSender, device: Device): { provider: PushProvider; devices: Device[] } {
  const devices = [device];
  const provider = new PushProvider({
    senders: new Map([[sender.provider, sender]]),
    devices: {
      listDevices: async (userId) => devices.filter((d) => d.userId === userId),
      removeDevice: async (id) => {
        const i = devices.findIndex((d) => d.id === id);
        if (i >= 0) devices.splice(i, 1);
        return i >= 0;
      },
      touchDevices: async () => {},
    },
  });
  return { provider, devices };
}

/** A push entry's rig: its sender behind the push channel; `unreachable` names senders to close after. */
function pushRig<A>(
  sender: PushSender,
  device: Device,
  fake: Pick<Rig<A>, 'requests' | 'identities' | 'secrets' | 'leak' | 'close'> & {
    unreachable(): Promise<{ senders: PushSender[]; device: Device }>;
  },
): Rig<A> {
  const { provider, devices } = pushChannel(sender, device);
  return {
    provider,
    job: (n) => deliveryJob('push', n, {}, PUSH_USER),
    jobWithoutAddress: () => deliveryJob('push', 1, {}, 'user-without-device'),
    requests: fake.requests,
    identities: fake.identities,
    secrets: fake.secrets,
    devices: () => [...devices],
    ...(fake.leak ? { leak: fake.leak } : {}),
    async unreachable() {
      const target = await fake.unreachable();
      const [first] = target.senders;
      const channel = pushChannel(first ?? sender, target.device);
      return {
        provider: channel.provider,
        job: deliveryJob('push', 1, {}, PUSH_USER),
        close: async () => {
          for (const s of target.senders) if (s !== sender) await s.close?.();
        },
      };
    },
    async close() {
      await provider.close();
      await fake.close();
    },
  };
}

/** The base64 lines of a PEM key: a leak of any one of them is a leak. */
function pemLines(pem: string): string[] {
  return pem.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));
}

/** A loopback port nobody listens on (bound, then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
