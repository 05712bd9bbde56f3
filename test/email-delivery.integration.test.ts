/**
 * The email channel end to end, on both stores, against a real SMTP server (test/support/smtp-server.ts):
 * what arrives (once; subject, text and HTML parts, From, a Message-ID stable across attempts, the
 * Herald headers; AUTH PLAIN with the URL's user and password) and what the producer sees (retries on
 * 4xx and on a server that is down, permanent failure on 5xx, skipped without an address, and never
 * the SMTP password).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { startHerald } from '../src/herald.ts';
import { openTestPglite } from './support/databases.ts';
import { eventually, startTestHerald, TEST_API_KEY, type TestHerald, testEnv } from './support/herald.ts';
import { type SmtpAnswer, startSmtpServer, type TestSmtpServer } from './support/smtp-server.ts';

const USER = 'herald-user';
const PASS = 'smtp-Pa55word-42';
const FROM = 'Herald Notices <notify@mail.example.test>';
const RETRY_ENV = { HERALD_RETRY_BASE_MS: '150', HERALD_RETRY_MAX_ATTEMPTS: '3' };

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe.each(['pglite', 'postgres'] as const)('email delivery (%s)', (store) => {
  let t: TestHerald;
  let smtp: TestSmtpServer;
  /** How the server answers DATA for each recipient; others get 250. */
  const behaviour = new Map<string, (n: number) => SmtpAnswer>();
  const unknownMailboxes = new Set<string>();
  let seq = 0;

  beforeAll(async () => {
    smtp = await startSmtpServer({
      user: USER,
      pass: PASS,
      respond: (rcpt, n) => behaviour.get(rcpt)?.(n) ?? 250,
      rejectRcpt: (rcpt) => (unknownMailboxes.has(rcpt) ? { code: 550, text: '5.1.1 mailbox unknown' } : null),
    });
    t = await startTestHerald({
      store,
      env: {
        ...RETRY_ENV,
        HERALD_SMTP_URL: `smtp://${USER}:${PASS}@127.0.0.1:${smtp.port}`,
        HERALD_EMAIL_FROM: FROM,
      },
    });
  });

  afterAll(async () => {
    await t?.stop();
    await smtp?.close();
  });

  async function emailUser(h: TestHerald, email: string | null): Promise<string> {
    const id = `mail-${store}-${++seq}`;
    const r = await h.api('PUT', `/v1/users/${id}`, email ? { email } : { locale: 'en' });
    expect(r.status).toBe(200);
    return id;
  }

  async function notify(h: TestHerald, userId: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await h.api('POST', '/v1/notifications', {
      to: [userId],
      category: 'comment.reply',
      channels: ['email'],
      title: 'Ada replied <to you>',
      body: 'Looks good & ships today.\nThanks!',
      ...extra,
    });
    expect(r.status).toBe(202);
    return r.json.id as string;
  }

  async function settledAs(h: TestHerald, id: string, status: string, timeoutMs = 15_000) {
    let last: any = null;
    try {
      return await eventually(
        async () => {
          last = (await h.api('GET', `/v1/notifications/${id}`)).json;
          return last.deliveries?.[0]?.status === status ? last : null;
        },
        `delivery of ${id} to be ${status}`,
        timeoutMs,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last)}`);
    }
  }

  const mailsTo = (rcpt: string) => smtp.received.filter((m) => m.rcpt === rcpt);

  it('arrives once with subject, text and HTML parts, the From, a Message-ID of the delivery, the Herald headers', async () => {
    const address = `ada-${store}@example.com`;
    const user = await emailUser(t, address);
    const id = await notify(t, user);
    const n = await settledAs(t, id, 'sent');
    expect(n.deliveries[0]).toMatchObject({ userId: user, channel: 'email', status: 'sent', attempts: 1 });
    // Nothing more comes afterwards.
    await new Promise((r) => setTimeout(r, 300));
    const got = mailsTo(address);
    expect(got).toHaveLength(1);
    const mail = got[0]?.parsed;
    const deliveryId = n.deliveries[0].id as string;
    expect(mail?.subject).toBe('Ada replied <to you>');
    expect(mail?.text?.trim()).toBe('Ada replied <to you>\n\nLooks good & ships today.\nThanks!');
    expect(mail?.html).toContain('<h1>Ada replied &#60;to you&#62;</h1>');
    expect(mail?.html).toContain('Looks good &#38; ships today.<br>');
    expect(mail?.from?.value[0]).toEqual({ name: 'Herald Notices', address: 'notify@mail.example.test' });
    expect(mail?.messageId).toBe(`<${deliveryId}@mail.example.test>`);
    expect(mail?.headers.get('x-herald-notification-id')).toBe(id);
    expect(mail?.headers.get('x-herald-delivery-id')).toBe(deliveryId);
    // AUTH PLAIN with the user and password of HERALD_SMTP_URL, checked by the server's onAuth.
    expect(smtp.logins.length).toBeGreaterThan(0);
    expect(smtp.logins.every((l) => l.ok && l.method === 'PLAIN' && l.username === USER && l.password === PASS)).toBe(
      true,
    );
  });

  it('451 then 250: retried and delivered, with the same Message-ID both times', async () => {
    const address = `retry-${store}@example.com`;
    behaviour.set(address, (n) => (n === 1 ? { code: 451, text: '4.3.0 try again later' } : 250));
    const user = await emailUser(t, address);
    const id = await notify(t, user);
    const n = await settledAs(t, id, 'sent');
    expect(n.deliveries[0].attempts).toBe(2);
    const failed = n.timeline.find((e: any) => e.event === 'attempt_failed');
    expect(JSON.stringify(failed)).toMatch(/451/);
    const got = mailsTo(address);
    expect(got.map((m) => m.answered)).toEqual([451, 250]);
    expect(got[0]?.parsed.messageId).toBe(`<${n.deliveries[0].id}@mail.example.test>`);
    expect(got[1]?.parsed.messageId).toBe(got[0]?.parsed.messageId);
  });

  it('550 mailbox unknown: failed after one attempt, not retried', async () => {
    const address = `nobody-${store}@example.com`;
    unknownMailboxes.add(address);
    const user = await emailUser(t, address);
    const id = await notify(t, user);
    const n = await settledAs(t, id, 'failed');
    expect(n.deliveries[0].attempts).toBe(1);
    expect(n.deliveries[0].lastError).toMatch(/550 5\.1\.1 mailbox unknown/);
    await new Promise((r) => setTimeout(r, 500));
    const again = (await t.api('GET', `/v1/notifications/${id}`)).json;
    expect(again.deliveries[0]).toMatchObject({ status: 'failed', attempts: 1 });
    expect(mailsTo(address)).toHaveLength(0);
  });

  it('a user without an email is skipped with the reason; nothing is sent', async () => {
    const user = await emailUser(t, null);
    const id = await notify(t, user);
    const n = await settledAs(t, id, 'skipped');
    expect(n.status).toBe('done');
    expect(n.deliveries[0].lastError).toBe(`user ${user} has no email`);
  });

  it('a server reply that quotes the password is reported with the password hidden', async () => {
    const address = `echo-${store}@example.com`;
    behaviour.set(address, () => ({ code: 554, text: `5.7.1 refused for ${USER}:${PASS}` }));
    const user = await emailUser(t, address);
    const id = await notify(t, user);
    const n = await settledAs(t, id, 'failed');
    expect(n.deliveries[0].lastError).toMatch(/554 5\.7\.1 refused for herald-user:\*\*\*/);
    expect(JSON.stringify(n)).not.toContain(PASS);
  });

  it('a server that is down: transient, retried with backoff, then dead; the password never shows', async () => {
    const down = await startTestHerald({
      store,
      env: {
        ...RETRY_ENV,
        HERALD_SMTP_URL: `smtp://${USER}:${PASS}@127.0.0.1:${await freePort()}`,
        HERALD_EMAIL_FROM: FROM,
        HERALD_SMTP_TIMEOUT_MS: '2000',
      },
    });
    try {
      const user = await emailUser(down, `down-${store}@example.com`);
      const id = await notify(down, user);
      const n = await settledAs(down, id, 'dead');
      expect(n.deliveries[0].attempts).toBe(3);
      expect(n.deliveries[0].lastError).toMatch(/ECONNREFUSED/);
      expect(n.timeline.filter((e: any) => e.event === 'attempt_failed').length).toBeGreaterThanOrEqual(2);
      expect(JSON.stringify(n)).not.toContain(PASS);
      const letters = (await down.api('GET', '/v1/dead-letters?limit=100')).json.items;
      expect(JSON.stringify(letters)).not.toContain(PASS);
      expect(letters.some((l: any) => l.id === n.deliveries[0].id)).toBe(true);
    } finally {
      await down.stop();
    }
  });

  it('a server that accepts and never greets: the send times out (transient), retried, then dead', async () => {
    const sockets = new Set<import('node:net').Socket>();
    // Accepts connections and says nothing.
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    const mute = await startTestHerald({
      store,
      env: {
        ...RETRY_ENV,
        HERALD_SMTP_URL: `smtp://${USER}:${PASS}@127.0.0.1:${port}`,
        HERALD_EMAIL_FROM: FROM,
        HERALD_SMTP_TIMEOUT_MS: '300',
      },
    });
    try {
      const user = await emailUser(mute, `mute-${store}@example.com`);
      const started = Date.now();
      const id = await notify(mute, user);
      const n = await settledAs(mute, id, 'dead');
      expect(n.deliveries[0].attempts).toBe(3);
      expect(n.deliveries[0].lastError).toMatch(/greeting|timed out/i);
      // Three bounded attempts, not three hangs.
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(JSON.stringify(n)).not.toContain(PASS);
    } finally {
      await mute.stop();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('email without HERALD_SMTP_URL', () => {
  it('is skipped with the reason, as before', async () => {
    const t = await startTestHerald();
    try {
      expect((await t.api('PUT', '/v1/users/no-smtp', { email: 'a@example.com' })).status).toBe(200);
      const r = await t.api('POST', '/v1/notifications', {
        to: ['no-smtp'],
        category: 'x',
        channels: ['email'],
        title: 't',
      });
      expect(r.status).toBe(202);
      const n = await eventually(async () => {
        const g = (await t.api('GET', `/v1/notifications/${r.json.id}`)).json;
        return g.deliveries?.[0]?.status === 'skipped' ? g : null;
      }, 'the email delivery to be skipped');
      expect(n.deliveries[0].lastError).toBe('no provider is configured for channel email');
    } finally {
      await t.stop();
    }
  });
});

describe('email logs', () => {
  it('name the SMTP server at start with its password hidden, and never show the password at any level', async () => {
    const smtp = await startSmtpServer({
      user: USER,
      pass: PASS,
      respond: () => ({ code: 451, text: `4.7.0 slow down ${PASS}` }),
    });
    const lines: string[] = [];
    const dataDir = await mkdtemp(join(tmpdir(), 'herald-email-logs-'));
    const config = loadConfig({
      ...testEnv(dataDir),
      ...RETRY_ENV,
      HERALD_POLL_MS: '50',
      HERALD_LOG_LEVEL: 'trace',
      HERALD_SMTP_URL: `smtp://${USER}:${PASS}@127.0.0.1:${smtp.port}`,
      HERALD_EMAIL_FROM: FROM,
    });
    const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
    const herald = await startHerald(config, { logger, store: await openTestPglite() });
    try {
      const api = (method: string, path: string, body?: unknown) =>
        fetch(`${herald.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }).then((r) => r.json() as Promise<any>);
      await api('PUT', '/v1/users/logged', { email: 'logged@example.com' });
      const posted = await api('POST', '/v1/notifications', {
        to: ['logged'],
        category: 'x',
        channels: ['email'],
        title: 't',
      });
      const n = await eventually(async () => {
        const r = await fetch(`${herald.url}/v1/notifications/${posted.id}`, {
          headers: { authorization: `Bearer ${TEST_API_KEY}` },
        }).then((x) => x.json() as Promise<any>);
        return r.deliveries?.[0]?.status === 'dead' ? r : null;
      }, 'the email delivery to be dead');
      expect(n.deliveries[0].lastError).toContain('451 4.7.0 slow down ***');
    } finally {
      await herald.stop();
      await smtp.close();
      await rm(dataDir, { recursive: true, force: true });
    }
    const all = lines.join('');
    expect(all).toContain(`smtp://${USER}:***@127.0.0.1:${smtp.port}`);
    expect(smtp.received.length).toBe(3);
    expect(all).not.toContain(PASS);
  });
});
