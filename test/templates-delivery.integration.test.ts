/**
 * Issue 12's first acceptance check, on both stores: one notification of a category with a
 * template, on in_app, email, sms, push, chat and webhook, to a `de` user and to a `fr` user (a
 * locale the template lacks), each with an email, an E.164 phone, a chatWebhookUrl, a webhookUrl and
 * a Web Push, an FCM and an APNs device. Herald runs as an operator runs it (a child process with
 * exactly the contract's settings, trusting the local HTTPS fakes through NODE_EXTRA_CA_CERTS), and
 * every local server checks what a real one would (SMTP AUTH, Twilio Basic auth, VAPID and a payload
 * that decrypts, FCM OAuth2, APNs ES256, the webhook signature).
 *
 * The `de` user gets German wherever `de` has text (its channel section, then its title/body), the
 * `fr` user the default locale; the inbox item is rendered over HTTP, on the live WebSocket frame and
 * in the replay after a reconnect; and a category without a template is sent as before.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { freshPostgresUrl } from './support/databases.ts';
import { type ApnsTestKey, type FakeApns, makeApnsTestKey, startFakeApns } from './support/fake-apns.ts';
import { type FakeChat, startFakeChat } from './support/fake-chat.ts';
import { type FakeFcm, startFakeFcm } from './support/fake-fcm.ts';
import { type FakeTwilio, startFakeTwilio } from './support/fake-twilio.ts';
import { type FakeSubscription, type FakeWebPush, startFakeWebPush } from './support/fake-webpush.ts';
import { eventually, TEST_API_KEY, testEnv } from './support/herald.ts';
import { type HeraldChild, startHeraldChild } from './support/herald-child.ts';
import { type Receiver, startReceiver } from './support/receiver.ts';
import { startSmtpServer, type TestSmtpServer } from './support/smtp-server.ts';
import { makeTestCertificate, type TestCertificate } from './support/tls-cert.ts';
import { connect } from './support/ws-client.ts';

const SMTP_USER = 'herald';
const SMTP_PASS = 'smtp-secret-42';
const SUBJECT = 'mailto:ops@example.com';
const APNS_TOPIC = 'com.example.herald';
const CHANNELS = ['in_app', 'email', 'sms', 'push', 'chat', 'webhook'];

const TEMPLATE = {
  defaultLocale: 'en',
  locales: {
    en: {
      title: '{{ data.actor }} replied',
      body: '{{ data.excerpt }}',
      email: {
        subject: 'New reply from {{ data.actor }}',
        html: '<p>{{ data.excerpt }}</p>',
        text: 'EN: {{ data.excerpt }}',
      },
      sms: { text: 'EN SMS {{ data.actor }}: {{ data.excerpt | truncate: 100 }}' },
      push: { title: 'EN push: {{ data.actor }}' },
    },
    de: {
      title: '{{ data.actor }} hat geantwortet',
      body: 'DE: {{ data.excerpt }}',
      chat: { text: 'DE Chat: {{ data.actor }} hat geantwortet' },
    },
  },
};

describe.each(['pglite', 'postgres'] as const)('templates rendered at delivery, every channel (%s)', (store) => {
  let cert: TestCertificate;
  let apnsKey: ApnsTestKey;
  let smtp: TestSmtpServer;
  let twilio: FakeTwilio;
  let push: FakeWebPush;
  let fcm: FakeFcm;
  let apns: FakeApns;
  let chat: FakeChat;
  let hooks: Receiver;
  let herald: HeraldChild;
  let dataDir: string;
  let db: { url: string; drop(): Promise<void> } | null = null;
  const vapid = webpush.generateVAPIDKeys();

  beforeAll(async () => {
    cert = await makeTestCertificate();
    apnsKey = makeApnsTestKey();
    smtp = await startSmtpServer({ user: SMTP_USER, pass: SMTP_PASS });
    twilio = await startFakeTwilio();
    push = await startFakeWebPush({ vapidPublicKey: vapid.publicKey, subject: SUBJECT, tls: cert });
    fcm = await startFakeFcm();
    apns = await startFakeApns(apnsKey, APNS_TOPIC);
    chat = await startFakeChat();
    hooks = await startReceiver();
    dataDir = await mkdtemp(join(tmpdir(), 'herald-templates-'));
    // The two HTTPS fakes' certificates, as an operator's CA bundle.
    const caBundle = join(dataDir, 'ca.pem');
    await writeFile(caBundle, `${cert.certPem}\n${apns.ca}\n`);
    db = store === 'postgres' ? await freshPostgresUrl() : null;
    herald = await startHeraldChild({
      ...testEnv(dataDir),
      HERALD_LOG_LEVEL: 'warn',
      HERALD_POLL_MS: '50',
      HERALD_RETRY_BASE_MS: '200',
      HERALD_RETRY_MAX_ATTEMPTS: '3',
      HERALD_SMTP_URL: `smtp://${SMTP_USER}:${SMTP_PASS}@127.0.0.1:${smtp.port}`,
      HERALD_EMAIL_FROM: 'Herald <notify@example.test>',
      HERALD_TWILIO_ACCOUNT_SID: twilio.accountSid,
      HERALD_TWILIO_AUTH_TOKEN: twilio.authToken,
      HERALD_TWILIO_FROM: '+14155550100',
      HERALD_TWILIO_BASE_URL: twilio.url,
      HERALD_VAPID_PUBLIC_KEY: vapid.publicKey,
      HERALD_VAPID_PRIVATE_KEY: vapid.privateKey,
      HERALD_VAPID_SUBJECT: SUBJECT,
      HERALD_FCM_SERVICE_ACCOUNT: fcm.serviceAccountPath,
      HERALD_FCM_BASE_URL: fcm.url,
      HERALD_APNS_KEY: apnsKey.p8Path,
      HERALD_APNS_KEY_ID: apnsKey.keyId,
      HERALD_APNS_TEAM_ID: apnsKey.teamId,
      HERALD_APNS_TOPIC: APNS_TOPIC,
      HERALD_APNS_BASE_URL: apns.url,
      NODE_EXTRA_CA_CERTS: caBundle,
      ...(db ? { DATABASE_URL: db.url } : {}),
    });
    expect((await api('PUT', '/v1/templates/comment.reply', TEMPLATE)).status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await herald?.stop();
    for (const s of [smtp, twilio, push, fcm, apns, chat, hooks]) await s?.close();
    await db?.drop();
    await cert?.remove();
    apnsKey?.cleanup();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(herald.url + path, {
      method,
      headers: {
        authorization: `Bearer ${TEST_API_KEY}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  interface Recipient {
    id: string;
    email: string;
    phone: string;
    chatPath: string;
    webpush: FakeSubscription;
    fcmToken: string;
    apnsToken: string;
  }

  /** A user with every contact point and one device of each push provider. */
  async function recipient(name: string, locale: string, phone: string): Promise<Recipient> {
    const id = `${name}-${store}-${randomBytes(3).toString('hex')}`;
    const r: Recipient = {
      id,
      email: `${id}@example.test`,
      phone,
      chatPath: `/hooks/${id}`,
      webpush: push.subscribe(),
      fcmToken: `fcm-${id}`,
      apnsToken: randomBytes(32).toString('hex'),
    };
    const profile = await api('PUT', `/v1/users/${id}`, {
      email: r.email,
      phone,
      locale,
      timezone: 'Europe/Berlin',
      webhookUrl: `${hooks.url}/${id}`,
      chatWebhookUrl: chat.url(r.chatPath),
    });
    expect(profile.status, JSON.stringify(profile.json)).toBe(200);
    for (const device of [
      { provider: 'webpush', token: { endpoint: r.webpush.endpoint, keys: r.webpush.keys } },
      { provider: 'fcm', token: r.fcmToken },
      { provider: 'apns', token: r.apnsToken },
    ]) {
      const d = await api('POST', `/v1/users/${id}/devices`, device);
      expect(d.status, JSON.stringify(d.json)).toBe(201);
    }
    return r;
  }

  /** Posts a notification and waits until none of its deliveries is pending or processing. */
  async function notifyAndSettle(body: Record<string, unknown>) {
    const r = await api('POST', '/v1/notifications', body);
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    return eventually(
      async () => {
        const n = await api('GET', `/v1/notifications/${r.json.id}`);
        const settled = n.json.deliveries.every(
          (d: { status: string }) => !['pending', 'processing'].includes(d.status),
        );
        return settled ? n.json : null;
      },
      'every delivery to settle',
      30_000,
    );
  }

  /** What reached each local server for `r`. */
  function arrived(r: Recipient) {
    const mails = smtp.received.filter((m) => m.rcpt === r.email);
    const sms = twilio.received.filter((m) => m.to === r.phone);
    const webpushes = push.requestsFor(r.webpush);
    const fcms = fcm.received.filter((m) => m.token === r.fcmToken);
    const apnses = apns.received.filter((m) => m.deviceToken === r.apnsToken);
    const chats = chat.to(r.chatPath);
    const webhooks = hooks.received.filter((h) => h.json?.userId === r.id);
    return { mails, sms, webpushes, fcms, apnses, chats, webhooks };
  }

  it('renders each channel in German where de has text, and from the default locale for a locale it lacks', async () => {
    const de = await recipient('de', 'de', '+4915112345678');
    const fr = await recipient('fr', 'fr', '+33612345678');
    const token = (await api('POST', `/v1/users/${de.id}/tokens`, {})).json.token as string;
    const socket = await connect(herald.url, token);
    await socket.ready();

    const n = await notifyAndSettle({
      to: [de.id, fr.id],
      category: 'comment.reply',
      channels: CHANNELS,
      title: 'Own title',
      body: 'Own body',
      data: { actor: 'Ada', excerpt: 'Looks good' },
    });
    expect(
      n.deliveries.map((d: { channel: string; status: string; lastError: string | null }) => [
        d.channel,
        d.status,
        d.lastError,
      ]),
    ).toEqual(expect.arrayContaining(CHANNELS.map((c) => [c, c === 'in_app' ? expect.any(String) : 'sent', null])));
    expect(n.deliveries.filter((d: { status: string }) => !['sent', 'delivered'].includes(d.status))).toEqual([]);

    // --- de: German wherever de has text.
    const g = arrived(de);
    expect(g.mails).toHaveLength(1);
    const mail = g.mails[0]?.parsed;
    expect(mail?.subject).toBe('Ada hat geantwortet'); // de has no email section: its title first
    expect(mail?.text?.trim()).toBe('DE: Looks good');
    expect(mail?.html).toContain('DE: Looks good');
    expect(g.sms.map((m) => m.body)).toEqual(['Ada hat geantwortet: DE: Looks good']);
    expect(g.webpushes.map((p) => [p.payload.title, p.payload.body])).toEqual([
      ['Ada hat geantwortet', 'DE: Looks good'],
    ]);
    expect(g.fcms.map((p) => p.message.notification)).toEqual([
      { title: 'Ada hat geantwortet', body: 'DE: Looks good' },
    ]);
    expect(g.apnses.map((p) => (p.body.aps as { alert: unknown }).alert)).toEqual([
      { title: 'Ada hat geantwortet', body: 'DE: Looks good' },
    ]);
    expect(g.chats.map((c) => c.json.text)).toEqual(['DE Chat: Ada hat geantwortet']);
    expect(JSON.stringify(g.chats[0]?.json.blocks)).toContain('DE Chat: Ada hat geantwortet');
    expect(g.webhooks.map((h) => [h.signatureValid, h.json.title, h.json.body])).toEqual([
      [true, 'Ada hat geantwortet', 'DE: Looks good'],
    ]);

    // --- fr: the template has no fr, so the default locale (en), its channel sections first.
    const e = arrived(fr);
    const frMail = e.mails[0]?.parsed;
    expect(e.mails).toHaveLength(1);
    expect(frMail?.subject).toBe('New reply from Ada');
    expect(frMail?.text?.trim()).toBe('EN: Looks good');
    expect(frMail?.html).toContain('<p>Looks good</p>');
    expect(e.sms.map((m) => m.body)).toEqual(['EN SMS Ada: Looks good']);
    expect(e.webpushes.map((p) => [p.payload.title, p.payload.body])).toEqual([['EN push: Ada', 'Looks good']]);
    expect(e.fcms.map((p) => p.message.notification)).toEqual([{ title: 'EN push: Ada', body: 'Looks good' }]);
    expect(e.apnses.map((p) => (p.body.aps as { alert: unknown }).alert)).toEqual([
      { title: 'EN push: Ada', body: 'Looks good' },
    ]);
    expect(e.chats.map((c) => c.json.blocks)).toEqual([
      [
        { type: 'header', text: { type: 'plain_text', text: 'Ada replied' } },
        { type: 'section', text: { type: 'mrkdwn', text: 'Looks good' } },
      ],
    ]);
    expect(e.webhooks.map((h) => [h.json.title, h.json.body])).toEqual([['Ada replied', 'Looks good']]);

    // Every fake saw valid auth and a payload it could read.
    expect([...push.refused, ...fcm.refused, ...apns.refused, ...twilio.refused]).toEqual([]);

    // --- in-app: rendered over HTTP, on the live frame, and in the replay after a reconnect.
    const frame = await socket.waitFor((m) => m.type === 'notification' && m.id === n.id, 'the live frame', 15_000);
    expect([frame.title, frame.body]).toEqual(['Ada hat geantwortet', 'DE: Looks good']);
    await socket.close();
    const deInbox = await api('GET', `/v1/users/${de.id}/inbox`);
    expect(deInbox.json.items.map((i: { id: string; title: string; body: string }) => [i.id, i.title, i.body])).toEqual(
      [[n.id, 'Ada hat geantwortet', 'DE: Looks good']],
    );
    const frInbox = await api('GET', `/v1/users/${fr.id}/inbox`);
    expect(frInbox.json.items.map((i: { title: string; body: string }) => [i.title, i.body])).toEqual([
      ['Ada replied', 'Looks good'],
    ]);
    const again = await connect(herald.url, token, { after: 0 });
    const replayed = await again.waitFor((m) => m.type === 'notification' && m.id === n.id, 'the replay', 15_000);
    expect([replayed.seq, replayed.title, replayed.body]).toEqual([frame.seq, 'Ada hat geantwortet', 'DE: Looks good']);
    await again.close();
  }, 90_000);

  it('a category without a template is sent as before, with the notification’s own text', async () => {
    const de = await recipient('plain', 'de', '+4915199999999');
    const n = await notifyAndSettle({
      to: [de.id],
      category: 'order.shipped',
      channels: CHANNELS,
      title: 'Your order shipped',
      body: 'It arrives tomorrow.',
      data: { actor: 'Ada' },
    });
    expect(n.deliveries.filter((d: { status: string }) => !['sent', 'delivered'].includes(d.status))).toEqual([]);
    const g = arrived(de);
    expect(g.mails[0]?.parsed.subject).toBe('Your order shipped');
    expect(g.mails[0]?.parsed.text).toContain('It arrives tomorrow.');
    expect(g.sms.map((m) => m.body)).toEqual(['Your order shipped\nIt arrives tomorrow.']);
    expect(g.webpushes.map((p) => [p.payload.title, p.payload.body])).toEqual([
      ['Your order shipped', 'It arrives tomorrow.'],
    ]);
    expect(g.fcms.map((p) => (p.message.notification as { title: string }).title)).toEqual(['Your order shipped']);
    expect(g.apnses.map((p) => (p.body.aps as { alert: { title: string } }).alert.title)).toEqual([
      'Your order shipped',
    ]);
    expect(g.chats.map((c) => c.json.text)).toEqual(['Your order shipped\nIt arrives tomorrow.']);
    expect(g.webhooks.map((h) => h.json.title)).toEqual(['Your order shipped']);
    const inbox = await api('GET', `/v1/users/${de.id}/inbox`);
    expect(inbox.json.items.map((i: { title: string }) => i.title)).toEqual(['Your order shipped']);
    // Completed in SQL, as ever: its `sent` event has no template detail.
    expect(n.timeline.some((t: { detail: { templateError?: string } | null }) => t.detail?.templateError)).toBe(false);
  }, 60_000);

  it('a template put through the API applies to the next notification of this process at once', async () => {
    const de = await recipient('fresh', 'de', '+4915188888888');
    const category = `fresh.${store}`;
    // First without a template: its absence is cached …
    await notifyAndSettle({ to: [de.id], category, channels: ['in_app', 'webhook'], title: 'Plain' });
    // … and a put through the API replaces that at once (no waiting out the cache's TTL).
    const put = await api('PUT', `/v1/templates/${category}`, {
      defaultLocale: 'en',
      locales: { en: { title: 'EN {{ data.n }}' }, de: { title: 'DE {{ data.n }}' } },
    });
    expect(put.status).toBe(200);
    await notifyAndSettle({ to: [de.id], category, channels: ['in_app', 'webhook'], title: 'Plain', data: { n: 2 } });
    const inbox = await api('GET', `/v1/users/${de.id}/inbox`);
    expect(inbox.json.items.map((i: { title: string }) => i.title)).toEqual(['DE 2', 'Plain']);
    expect(arrived(de).webhooks.map((h) => h.json.title)).toEqual(['Plain', 'DE 2']);
    expect((await api('DELETE', `/v1/templates/${category}`)).status).toBe(204);
    await notifyAndSettle({ to: [de.id], category, channels: ['in_app'], title: 'Plain again', data: { n: 3 } });
    expect((await api('GET', `/v1/users/${de.id}/inbox`)).json.items[0].title).toBe('Plain again');
  }, 60_000);
});
