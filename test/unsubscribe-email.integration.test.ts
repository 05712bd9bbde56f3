/**
 * One-click unsubscribe end to end (RFC 8058), on both stores, with a real SMTP server: every email
 * carries List-Unsubscribe (an HTTPS-style link to HERALD_PUBLIC_URL) and List-Unsubscribe-Post; a
 * GET of the link changes nothing; a POST of `List-Unsubscribe=One-Click` (form-urlencoded or
 * multipart) opts the user out of that category × email, merged into what they had, so that the
 * next email of that category is `skipped` with reason `opted_out` while another category still
 * arrives. Forged and missing tokens are refused; concurrent unsubscribes all hold.
 */
import { createServer } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { expectError, expectNamesField, rawRequest } from './support/http.ts';
import { startSmtpServer, type TestSmtpServer } from './support/smtp-server.ts';

const USER = 'herald-user';
const PASS = 'smtp-Pa55word-42';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const ONE_CLICK = 'List-Unsubscribe=One-Click';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe.each(['pglite', 'postgres'] as const)('one-click unsubscribe (%s)', (store) => {
  let t: TestHerald;
  let smtp: TestSmtpServer;
  let publicUrl: string;
  let seq = 0;

  beforeAll(async () => {
    smtp = await startSmtpServer({ user: USER, pass: PASS });
    const port = await freePort();
    // A path prefix, as behind a reverse proxy: the links must keep it (the test strips it to call Herald).
    publicUrl = `http://127.0.0.1:${port}/mail`;
    t = await startTestHerald({
      store,
      env: {
        PORT: String(port),
        HERALD_SMTP_URL: `smtp://${USER}:${PASS}@127.0.0.1:${smtp.port}`,
        HERALD_EMAIL_FROM: 'Herald <notify@mail.example.test>',
        HERALD_PUBLIC_URL: `${publicUrl}/`,
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
    await smtp?.close();
  });

  async function emailUser(): Promise<{ id: string; address: string }> {
    const id = `unsub-${store}-${++seq}`;
    const address = `${id}@example.com`;
    expect((await t.api('PUT', `/v1/users/${id}`, { email: address })).status).toBe(200);
    return { id, address };
  }

  // Critical: the users of these tests may have quiet hours, which are not what is tested here.
  async function notify(userId: string, category: string): Promise<string> {
    const r = await t.api('POST', '/v1/notifications', {
      to: [userId],
      category,
      priority: 'critical',
      channels: ['email'],
      title: `About ${category}`,
      body: 'Hello',
    });
    expect(r.status).toBe(202);
    return r.json.id as string;
  }

  async function settled(id: string) {
    return eventually(async () => {
      const n = (await t.api('GET', `/v1/notifications/${id}`)).json;
      const s = n.deliveries?.[0]?.status;
      return s && s !== 'pending' && s !== 'processing' ? n : null;
    }, `delivery of ${id} to settle`);
  }

  /** The List-Unsubscribe link of the one mail to `address` about `category`, as a path on Herald. */
  function linkIn(address: string, category: string): { header: string; post: string; path: string } {
    const mails = smtp.received.filter((m) => m.rcpt === address && m.parsed.subject === `About ${category}`);
    expect(mails).toHaveLength(1);
    const raw = mails[0]?.raw ?? '';
    // Unfolded (RFC 5322 folding: CRLF + whitespace).
    const headers = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
    const header = /^List-Unsubscribe: (.*)$/im.exec(headers)?.[1] ?? '';
    const post = /^List-Unsubscribe-Post: (.*)$/im.exec(headers)?.[1] ?? '';
    const url = /^<(.*)>$/.exec(header.trim())?.[1] ?? '';
    expect(url.startsWith(`${publicUrl}/v1/unsubscribe?token=`), header).toBe(true);
    return { header, post, path: url.slice(publicUrl.length) };
  }

  const preferencesOf = async (userId: string) => (await t.api('GET', `/v1/users/${userId}/preferences`)).json;

  it('the email carries both headers; GET shows a page and changes nothing; POST opts out of that category × email', async () => {
    const { id: user, address } = await emailUser();
    expect((await settled(await notify(user, 'comment.reply'))).deliveries[0].status).toBe('sent');
    const link = linkIn(address, 'comment.reply');
    expect(link.post).toBe(ONE_CLICK);

    // A GET (a mail scanner, a link preview, the user's click) only shows the page.
    const page = await rawRequest(t.url, 'GET', link.path);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.text).toContain('<form method="post"');
    expect(page.text).toContain('name="List-Unsubscribe" value="One-Click"');
    expect(page.text).toContain('comment.reply');
    expect(await preferencesOf(user)).toEqual({ channels: {}, categories: {}, quietHours: null });

    // The one-click POST, as a mail client sends it.
    const done = await rawRequest(t.url, 'POST', link.path, { headers: FORM, body: ONE_CLICK });
    expect(done.status).toBe(200);
    expect(done.headers.get('content-type')).toMatch(/^text\/html/);
    expect(done.text).toContain('no longer receive');
    expect(await preferencesOf(user)).toEqual({
      channels: {},
      categories: { 'comment.reply': { email: false } },
      quietHours: null,
    });
    // Again: nothing changes.
    expect((await rawRequest(t.url, 'POST', link.path, { headers: FORM, body: ONE_CLICK })).status).toBe(200);
    expect((await preferencesOf(user)).categories).toEqual({ 'comment.reply': { email: false } });

    // The next email of that category is skipped as it is accepted (the decider, ADR 13), with the
    // reason on the delivery and in the timeline...
    const skipped = await settled(await notify(user, 'comment.reply'));
    expect(skipped.deliveries[0]).toMatchObject({ status: 'skipped', reason: 'opted_out' });
    expect(
      skipped.timeline.some(
        (e: any) =>
          e.event === 'skipped' &&
          e.detail?.reason === 'opted_out' &&
          e.detail?.userId === user &&
          e.detail?.channel === 'email',
      ),
    ).toBe(true);
    // ...and another category still arrives.
    const other = await settled(await notify(user, 'comment.mention'));
    expect(other.deliveries[0].status).toBe('sent');
    linkIn(address, 'comment.mention');
    expect(smtp.received.filter((m) => m.rcpt === address)).toHaveLength(2);
  });

  it('merges into what the user had: other keys stay, a category set to true keeps its other channels', async () => {
    const { id: user, address } = await emailUser();
    const before = {
      channels: { sms: false },
      categories: { 'billing.invoice': true, 'marketing.*': false },
      quietHours: { start: '22:00', end: '07:00' },
    };
    expect((await t.api('PUT', `/v1/users/${user}/preferences`, before)).status).toBe(200);
    await settled(await notify(user, 'billing.invoice'));
    const { path } = linkIn(address, 'billing.invoice');
    // multipart/form-data, which RFC 8058 also allows.
    const boundary = '----herald-test-boundary';
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`;
    const r = await rawRequest(t.url, 'POST', path, {
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
    });
    expect(r.status).toBe(200);
    expect(await preferencesOf(user)).toEqual({
      ...before,
      categories: {
        'marketing.*': false,
        'billing.invoice': { in_app: true, email: false, sms: true, push: true, webhook: true, chat: true },
      },
    });
  });

  it('concurrent unsubscribes of one user all hold (one statement each, no lost update)', async () => {
    const { id: user, address } = await emailUser();
    const categories = Array.from({ length: 8 }, (_, i) => `news.topic${i}`);
    await Promise.all(categories.map(async (c) => settled(await notify(user, c))));
    const paths = categories.map((c) => linkIn(address, c).path);
    const answers = await Promise.all(
      paths.map((p) => rawRequest(t.url, 'POST', p, { headers: FORM, body: ONE_CLICK })),
    );
    expect(answers.map((a) => a.status)).toEqual(categories.map(() => 200));
    expect((await preferencesOf(user)).categories).toEqual(
      Object.fromEntries(categories.map((c) => [c, { email: false }])),
    );
  });

  it('refuses forged, altered and missing tokens, and a POST without List-Unsubscribe=One-Click', async () => {
    const { id: user, address } = await emailUser();
    await settled(await notify(user, 'security.digest'));
    const { path } = linkIn(address, 'security.digest');
    const token = new URL(path, t.url).searchParams.get('token') as string;
    const [payload, sig] = token.split('.');
    const mallory = Buffer.from(JSON.stringify([1, 'mallory', 'security.digest', 'email'])).toString('base64url');
    for (const bad of [`${mallory}.${sig}`, `${payload}.${sig?.slice(0, -2)}AA`, 'nonsense', `${payload}.`]) {
      const q = `/v1/unsubscribe?token=${encodeURIComponent(bad)}`;
      expectError(await rawRequest(t.url, 'GET', q), 'HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN');
      expectError(
        await rawRequest(t.url, 'POST', q, { headers: FORM, body: ONE_CLICK }),
        'HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN',
      );
    }
    expectError(await rawRequest(t.url, 'GET', '/v1/unsubscribe'), 'HERALD_ERR_UNAUTHORIZED');
    expectError(
      await rawRequest(t.url, 'POST', '/v1/unsubscribe', { headers: FORM, body: ONE_CLICK }),
      'HERALD_ERR_UNAUTHORIZED',
    );
    const noBody = await rawRequest(t.url, 'POST', path, { headers: FORM, body: 'List-Unsubscribe=Yes' });
    expectNamesField(expectError(noBody, 'HERALD_ERR_VALIDATION'), 'List-Unsubscribe');
    expectError(await rawRequest(t.url, 'POST', path), 'HERALD_ERR_VALIDATION');
    expectError(
      await rawRequest(t.url, 'POST', path, { headers: { 'content-type': 'text/plain' }, body: ONE_CLICK }),
      'HERALD_ERR_UNSUPPORTED_MEDIA_TYPE',
    );
    // Nobody was opted out of anything.
    expect((await preferencesOf(user)).categories).toEqual({});
    expect((await preferencesOf('mallory')).categories).toEqual({});
  });
});

describe('without HERALD_PUBLIC_URL', () => {
  it('emails carry no List-Unsubscribe, and start-up warns that they do not', async () => {
    const smtp = await startSmtpServer({ user: USER, pass: PASS });
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const t = await startTestHerald({
      logger,
      env: {
        HERALD_SMTP_URL: `smtp://${USER}:${PASS}@127.0.0.1:${smtp.port}`,
        HERALD_EMAIL_FROM: 'notify@mail.example.test',
      },
    });
    try {
      expect(lines.some((l) => /HERALD_PUBLIC_URL is unset: emails carry no List-Unsubscribe/.test(l))).toBe(true);
      await t.api('PUT', '/v1/users/no-link', { email: 'no-link@example.com' });
      const r = await t.api('POST', '/v1/notifications', {
        to: ['no-link'],
        category: 'comment.reply',
        channels: ['email'],
        title: 't',
      });
      await eventually(() => smtp.received.length === 1, 'the email to arrive');
      const raw = smtp.received[0]?.raw ?? '';
      expect(raw).toMatch(/^X-Herald-Notification-Id: /im);
      expect(raw).not.toMatch(/^List-Unsubscribe/im);
      expect(r.status).toBe(202);
    } finally {
      await t.stop();
      await smtp.close();
    }
  });
});
