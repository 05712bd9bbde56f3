/**
 * Escalation steps (API.md Part 2: `{"channel": "email", "after": "PT1S", "unless": "read"}`) end to
 * end, on both stores, with a real SMTP server: a step is not sent before its delay; sent when the
 * in-app notification is still unread (or undelivered); skipped with reason `read` / `delivered`
 * when the user read it over HTTP or acknowledged it over the WebSocket before the delay; the view
 * shows the steps; bad steps are refused naming the field; the idempotency hash covers the steps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, userToken } from './support/http.ts';
import { startSmtpServer, type TestSmtpServer } from './support/smtp-server.ts';
import { connect, sleep } from './support/ws-client.ts';

const SMTP_USER = 'steps-user';
const SMTP_PASS = 'steps-Pa55word';

describe.each(['pglite', 'postgres'] as const)('channel steps (%s)', (store) => {
  let t: TestHerald;
  let smtp: TestSmtpServer;
  /** When each message reached the end of DATA, per recipient address. */
  const arrivals = new Map<string, number[]>();
  let seq = 0;

  beforeAll(async () => {
    smtp = await startSmtpServer({
      user: SMTP_USER,
      pass: SMTP_PASS,
      respond: (rcpt) => {
        arrivals.set(rcpt, [...(arrivals.get(rcpt) ?? []), Date.now()]);
        return 250;
      },
    });
    t = await startTestHerald({
      store,
      env: {
        HERALD_SMTP_URL: `smtp://${SMTP_USER}:${SMTP_PASS}@127.0.0.1:${smtp.port}`,
        HERALD_EMAIL_FROM: 'Herald <notify@steps.example.test>',
      },
    });
  });

  afterAll(async () => {
    await t?.stop();
    await smtp?.close();
  });

  async function user(): Promise<{ id: string; address: string }> {
    const id = `steps-${store}-${++seq}`;
    const address = `${id}@example.com`;
    expect((await t.api('PUT', `/v1/users/${id}`, { email: address })).status).toBe(200);
    return { id, address };
  }

  async function post(to: string[], channels: unknown[], headers?: Record<string, string>) {
    return t.api(
      'POST',
      '/v1/notifications',
      { to, category: 'comment.reply', title: 'Hi', body: 'there', channels },
      headers,
    );
  }

  async function accepted(to: string[], channels: unknown[]): Promise<string> {
    const r = await post(to, channels);
    expect(r.status).toBe(202);
    return r.json.id as string;
  }

  /** The notification once `pred` holds of its deliveries (every one of them listed). */
  async function viewWhen(id: string, pred: (ds: any[]) => boolean, what: string, timeoutMs = 15_000) {
    let last: any = null;
    try {
      return await eventually(
        async () => {
          last = (await t.api('GET', `/v1/notifications/${id}`)).json;
          return pred(last.deliveries) ? last : null;
        },
        what,
        timeoutMs,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last)}`);
    }
  }

  const delivery = (n: any, userId: string, channel: string) =>
    n.deliveries.find((d: any) => d.userId === userId && d.channel === channel);

  const settled = (ds: any[], channel: string) =>
    ds.filter((d) => d.channel === channel).every((d) => d.status !== 'pending');

  it('sends the email when the in-app notification is still unread after the delay, and not before', async () => {
    const u = await user();
    const id = await accepted([u.id], ['in_app', { channel: 'email', after: 'PT1S', unless: 'read' }]);
    const early = (await t.api('GET', `/v1/notifications/${id}`)).json;
    const createdAt = Date.parse(early.createdAt);
    expect(delivery(early, u.id, 'email')).toMatchObject({ status: 'pending', reason: null });
    expect(Date.parse(delivery(early, u.id, 'email').nextAttemptAt)).toBe(createdAt + 1000);

    const n = await viewWhen(id, (ds) => settled(ds, 'email'), 'the email step to be settled');
    expect(delivery(n, u.id, 'email')).toMatchObject({ status: 'sent', attempts: 1, reason: null });
    const got = arrivals.get(u.address) ?? [];
    expect(got).toHaveLength(1);
    expect(got[0]).toBeGreaterThanOrEqual(createdAt + 1000);
    expect(smtp.received.find((m) => m.rcpt === u.address)?.parsed.subject).toBe('Hi');
    // The in-app delivery was unaffected (and still unread).
    expect(delivery(n, u.id, 'in_app').status).toBe('sent');
  });

  it('skips the email, with reason read, for each user who read the in-app notification before the delay', async () => {
    // Several recipients, the step first and in_app last: each user's own in-app delivery decides.
    const [a, b, c] = [await user(), await user(), await user()];
    const id = await accepted(
      [a.id, b.id, c.id],
      [{ channel: 'email', after: 'PT2S', unless: 'read' }, 'webhook', 'in_app'],
    );
    await eventually(
      async () => (await t.api('GET', `/v1/users/${b.id}/inbox`)).json.unreadCount === 1,
      'the in-app entry',
    );
    const read = await t.api('POST', `/v1/users/${b.id}/inbox/read`, { all: true }, bearer(userToken(b.id)));
    expect(read.status).toBe(200);

    const n = await viewWhen(id, (ds) => settled(ds, 'email'), 'the email steps to be settled');
    expect(delivery(n, b.id, 'email')).toMatchObject({ status: 'skipped', reason: 'read', attempts: 1 });
    expect(delivery(n, b.id, 'email').lastError).toMatch(/read/);
    expect(delivery(n, b.id, 'in_app').status).toBe('read');
    for (const other of [a, c]) expect(delivery(n, other.id, 'email')).toMatchObject({ status: 'sent', reason: null });

    // (The webhook deliveries are skipped too: these users have no webhookUrl.)
    const skipped = n.timeline.filter((e: any) => e.event === 'skipped' && e.detail?.channel === 'email');
    expect(skipped).toHaveLength(1);
    expect(skipped[0].detail).toMatchObject({ reason: 'read', userId: b.id, channel: 'email' });
    await sleep(300);
    expect(arrivals.get(b.address)).toBeUndefined();
    expect(arrivals.get(a.address)).toHaveLength(1);
    expect(arrivals.get(c.address)).toHaveLength(1);
    expect(n.steps).toEqual([{ channel: 'email', after: 'PT2S', unless: 'read' }]);
    expect(n.channels).toEqual(['email', 'webhook', 'in_app']);
  });

  it('skips a step "unless delivered" once the WebSocket client acknowledged the notification', async () => {
    const u = await user();
    const ws = await connect(t.url, userToken(u.id));
    try {
      await ws.ready();
      const id = await accepted([u.id], ['in_app', { channel: 'email', after: 'PT1S', unless: 'delivered' }]);
      const frame = await ws.waitFor((m) => m.type === 'notification' && m.id === id, 'the notification frame');
      ws.send({ type: 'ack', seq: frame.seq });
      await viewWhen(id, (ds) => ds.some((d) => d.channel === 'in_app' && d.status === 'delivered'), 'the ack');
      const n = await viewWhen(id, (ds) => settled(ds, 'email'), 'the email step to be settled');
      expect(delivery(n, u.id, 'email')).toMatchObject({ status: 'skipped', reason: 'delivered' });
      expect(arrivals.get(u.address)).toBeUndefined();
    } finally {
      ws.ws.close();
    }
  });

  it('sends a step "unless delivered" when no client received the notification', async () => {
    const u = await user();
    const id = await accepted([u.id], ['in_app', { channel: 'email', after: 'PT1S', unless: 'delivered' }]);
    const n = await viewWhen(id, (ds) => settled(ds, 'email'), 'the email step to be settled');
    expect(delivery(n, u.id, 'email')).toMatchObject({ status: 'sent', reason: null });
    expect(arrivals.get(u.address)).toHaveLength(1);
  });

  it('sends a step whose notification has no in-app delivery', async () => {
    const u = await user();
    const id = await accepted([u.id], [{ channel: 'email', unless: 'read' }]);
    const n = await viewWhen(id, (ds) => settled(ds, 'email'), 'the email to be settled');
    expect(delivery(n, u.id, 'email')).toMatchObject({ status: 'sent', reason: null });
    expect(n.steps).toEqual([{ channel: 'email', after: null, unless: 'read' }]);
  });

  it('delivers a delayed in-app step later, not in the accepting transaction', async () => {
    const u = await user();
    const id = await accepted([u.id], [{ channel: 'in_app', after: 'PT1S' }]);
    const createdAt = Date.parse((await t.api('GET', `/v1/notifications/${id}`)).json.createdAt);
    expect((await t.api('GET', `/v1/users/${u.id}/inbox`)).json.items).toEqual([]);
    const inbox = await eventually(async () => {
      const r = (await t.api('GET', `/v1/users/${u.id}/inbox`)).json;
      return r.items.length ? r : null;
    }, 'the delayed in-app entry');
    expect(Date.now()).toBeGreaterThanOrEqual(createdAt + 1000);
    expect(inbox.items[0].id).toBe(id);
    const n = (await t.api('GET', `/v1/notifications/${id}`)).json;
    const sent = n.timeline.find((e: any) => e.event === 'sent' && e.detail?.channel === 'in_app');
    expect(Date.parse(sent.at)).toBeGreaterThanOrEqual(createdAt + 1000);
  });

  it('a plain notification still shows steps null', async () => {
    const u = await user();
    const id = await accepted([u.id], ['in_app']);
    const n = (await t.api('GET', `/v1/notifications/${id}`)).json;
    expect(n.steps).toBeNull();
    expect(n.channels).toEqual(['in_app']);
  });

  it('refuses bad steps with 400 naming the field, and stores nothing', async () => {
    const u = await user();
    const cases: [unknown[], string][] = [
      [['in_app', { channel: 'email', after: 'PT1.5S' }], 'channels.1.after'],
      [['in_app', { channel: 'email', after: 'P1M' }], 'channels.1.after'],
      [['in_app', { channel: 'email', after: 'P31D' }], 'channels.1.after'],
      [['in_app', { channel: 'email', unless: 'clicked' }], 'channels.1.unless'],
      [[{ channel: 'in_app', unless: 'read' }], 'channels.0.unless'],
      [['in_app', { channel: 'email', later: true }], 'channels.1'],
      [['in_app', { after: 'PT1M' }], 'channels.1.channel'],
      [['email', { channel: 'email', after: 'PT1M' }], 'channels'],
    ];
    for (const [channels, field] of cases) {
      const r = await post([u.id], channels);
      expect(r.status, JSON.stringify(channels)).toBe(400);
      expect(r.json.error.code).toBe('HERALD_ERR_VALIDATION');
      expect(r.json.error.details.map((d: any) => d.field)).toEqual([field]);
    }
    expect((await t.api('GET', `/v1/users/${u.id}/inbox`)).json.items).toEqual([]);
  });

  it('an idempotency key with other steps is a conflict; with the same steps, the first answer', async () => {
    const u = await user();
    const key = { 'idempotency-key': `steps-${store}-${seq}` };
    const channels = ['in_app', { channel: 'email', after: 'PT10M', unless: 'read' }];
    const first = await post([u.id], channels, key);
    expect(first.status).toBe(202);
    const again = await post([u.id], channels, key);
    expect(again.status).toBe(202);
    expect(again.json.id).toBe(first.json.id);
    const other = await post([u.id], ['in_app', { channel: 'email', after: 'PT10M', unless: 'delivered' }], key);
    expect(other.status).toBe(409);
    const plain = await post([u.id], ['in_app', 'email'], key);
    expect(plain.status).toBe(409);
  });
});
