/**
 * Egress policy end to end: Herald never sends a webhook to a destination that is not public unless
 * HERALD_EGRESS_ALLOW covers it. At PUT /v1/users a URL that can be judged without a lookup (a
 * literal address in any spelling, `localhost`) is refused with 400 naming the field; a profile that
 * holds one anyway (written while allowed, before an upgrade, or a name that resolves to loopback)
 * fails at delivery: permanently, at once, with a lastError naming the address and the setting,
 * and the receiver on 127.0.0.1 never sees a request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUserProfile } from '../src/core/input.ts';
import type { Store } from '../src/core/ports.ts';
import { freshPostgresUrl } from './support/databases.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { expectError, expectNamesField } from './support/http.ts';
import { type Receiver, startReceiver } from './support/receiver.ts';

const RETRY_ENV = { HERALD_RETRY_BASE_MS: '100', HERALD_RETRY_MAX_ATTEMPTS: '3' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let receiver: Receiver;
/** No allowance: only public addresses. */
let strict: TestHerald;
/** The test default: loopback allowed. */
let loopback: TestHerald;
/** Only 10.0.0.0/8 allowed: loopback still refused. */
let tenOnly: TestHerald;
let userSeq = 0;

/** The receiver's port, and its URL with another host spelling. */
const port = () => new URL(receiver.url).port;
const at = (host: string) => `http://${host}:${port()}/hook`;

beforeAll(async () => {
  receiver = await startReceiver();
  [strict, loopback, tenOnly] = await Promise.all([
    startTestHerald({ env: { ...RETRY_ENV, HERALD_EGRESS_ALLOW: '' } }),
    startTestHerald({ env: RETRY_ENV }),
    startTestHerald({ env: { ...RETRY_ENV, HERALD_EGRESS_ALLOW: '10.0.0.0/8' } }),
  ]);
});

afterAll(async () => {
  await Promise.all([strict?.stop(), loopback?.stop(), tenOnly?.stop()]);
  await receiver?.close();
});

const putWebhook = (t: TestHerald, user: string, webhookUrl: string) =>
  t.api('PUT', `/v1/users/${user}`, { webhookUrl });

/**
 * A profile as the store holds it, written without the API's check: what a profile saved while the
 * allowance covered it (or before this version) looks like to a Herald that does not allow it now.
 */
async function storedProfile(t: TestHerald, webhookUrl: string): Promise<string> {
  const id = `eg-${++userSeq}`;
  await (t.herald.adapters.store as Store).upsertUser({ ...parseUserProfile(id, {}), webhookUrl });
  return id;
}

async function notify(t: TestHerald, user: string): Promise<string> {
  const r = await t.api('POST', '/v1/notifications', {
    to: [user],
    category: 'egress.test',
    channels: ['webhook'],
    title: 'hello',
  });
  expect(r.status).toBe(202);
  return r.json.id as string;
}

async function settled(t: TestHerald, id: string, status: string) {
  let last: any = null;
  try {
    return await eventually(async () => {
      last = (await t.api('GET', `/v1/notifications/${id}`)).json;
      return last?.deliveries?.[0]?.status === status ? last : null;
    }, `delivery of ${id} to be ${status}`);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last?.deliveries)}`);
  }
}

const receivedFor = (user: string) => receiver.received.filter((r) => r.json?.userId === user);

describe('PUT /v1/users refuses a webhookUrl Herald would never connect to', () => {
  it.each([
    '127.0.0.1',
    '0x7f000001',
    '2130706433',
    '0177.0.0.1',
    '127.1',
    '[::ffff:127.0.0.1]',
    '[::ffff:7f00:1]',
    '[::1]',
    '0.0.0.0',
    '169.254.169.254',
    '[::ffff:169.254.169.254]',
    '10.0.0.5',
    '172.16.0.1',
    '192.168.1.1',
    '100.64.0.1',
    '[fd00::1]',
    '[fe80::1]',
    '224.0.0.1',
    '[ff02::1]',
    '255.255.255.255',
    '[64:ff9b::7f00:1]',
    '[2002:7f00:1::1]',
  ])('%s: 400 naming webhookUrl, the address and the setting', async (host) => {
    const r = await putWebhook(strict, `eg-put-${++userSeq}`, at(host));
    const error = expectError(r, 'HERALD_ERR_VALIDATION');
    expectNamesField(error, 'webhookUrl');
    expect(JSON.stringify(error.details)).toMatch(/^\[\{"field":"webhookUrl","message":"destination \S+ (is|carries) /);
    expect(JSON.stringify(error.details)).toMatch(/address, not a public one \(allow it with HERALD_EGRESS_ALLOW\)/);
  });

  it.each(['localhost', 'LOCALHOST.', 'api.localhost'])(
    '%s: 400 unless the allowance covers loopback',
    async (host) => {
      for (const t of [strict, tenOnly]) {
        const error = expectError(await putWebhook(t, `eg-put-${++userSeq}`, at(host)), 'HERALD_ERR_VALIDATION');
        expectNamesField(error, 'webhookUrl');
        expect(JSON.stringify(error.details)).toMatch(/loopback name.*HERALD_EGRESS_ALLOW/);
      }
      expect((await putWebhook(loopback, `eg-put-${++userSeq}`, at(host))).status).toBe(200);
    },
  );

  it('accepts what the allowance covers, and only that', async () => {
    expect((await putWebhook(loopback, 'eg-put-a', at('127.0.0.1'))).status).toBe(200);
    expect((await putWebhook(loopback, 'eg-put-b', at('[::1]'))).status).toBe(200);
    expect((await putWebhook(tenOnly, 'eg-put-c', at('10.1.2.3'))).status).toBe(200);
    expectError(await putWebhook(tenOnly, 'eg-put-d', at('127.0.0.1')), 'HERALD_ERR_VALIDATION');
    expectError(await putWebhook(tenOnly, 'eg-put-e', at('192.168.0.1')), 'HERALD_ERR_VALIDATION');
  });

  it('accepts public addresses and names (names are judged when connecting)', async () => {
    for (const url of ['https://example.com/hook', 'http://8.8.8.8/hook', 'https://[2606:4700:4700::1111]/hook']) {
      const r = await putWebhook(strict, `eg-put-${++userSeq}`, url);
      expect(r.status, url).toBe(200);
      expect(r.json.webhookUrl).toBe(url);
    }
  });

  it('refuses credentials in the URL, and schemes other than http(s)', async () => {
    const withCredentials = await putWebhook(loopback, 'eg-put-f', 'https://user:secret@example.com/hook');
    expectNamesField(expectError(withCredentials, 'HERALD_ERR_VALIDATION'), 'webhookUrl');
    expect(JSON.stringify(withCredentials.json)).toMatch(/credentials/);
    const file = await putWebhook(loopback, 'eg-put-g', 'file:///etc/passwd');
    expectNamesField(expectError(file, 'HERALD_ERR_VALIDATION'), 'webhookUrl');
  });
});

describe('webhook deliveries to a destination that is not allowed', () => {
  it.each([
    ['127.0.0.1', /^destination 127\.0\.0\.1 is a loopback address.*HERALD_EGRESS_ALLOW/],
    ['0x7f000001', /^destination 127\.0\.0\.1 is a loopback address.*HERALD_EGRESS_ALLOW/],
    [
      '[::ffff:127.0.0.1]',
      /^destination ::ffff:7f00:1 carries 127\.0\.0\.1, which is a loopback address.*HERALD_EGRESS_ALLOW/,
    ],
    [
      'localhost',
      /^destination localhost resolves to (127\.0\.0\.1|::1), which is a loopback address.*HERALD_EGRESS_ALLOW/,
    ],
    ['169.254.169.254', /^destination 169\.254\.169\.254 is a link-local address.*HERALD_EGRESS_ALLOW/],
    ['10.0.0.5', /^destination 10\.0\.0\.5 is a private address.*HERALD_EGRESS_ALLOW/],
  ])('%s: failed after one attempt, never retried, never received, lastError names it', async (host, why) => {
    const user = await storedProfile(strict, at(host));
    const n = await settled(strict, await notify(strict, user), 'failed');
    expect(n.deliveries[0]).toMatchObject({ status: 'failed', attempts: 1 });
    expect(n.deliveries[0].lastError).toMatch(why);
    // Longer than the first backoff: a retry would have come by now.
    await sleep(400);
    const again = (await strict.api('GET', `/v1/notifications/${n.id}`)).json;
    expect(again.deliveries[0].attempts).toBe(1);
    expect(receivedFor(user)).toHaveLength(0);
    const letters = (await strict.api('GET', '/v1/dead-letters?limit=500')).json.items;
    expect(letters.find((l: { id: string }) => l.id === n.deliveries[0].id)).toMatchObject({ status: 'failed' });
  });

  it('the allowance lets the same destinations through', async () => {
    for (const host of ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]']) {
      const user = `eg-ok-${++userSeq}`;
      expect((await putWebhook(loopback, user, at(host))).status).toBe(200);
      const n = await settled(loopback, await notify(loopback, user), 'sent');
      expect(n.deliveries[0].attempts).toBe(1);
      expect(receivedFor(user)).toHaveLength(1);
    }
  });

  it('a redirect is not followed: failed with the status, one request only', async () => {
    const user = `eg-redirect-${++userSeq}`;
    const redirecting = await startReceiver(() => ({ status: 302, headers: { location: `${receiver.url}?moved` } }));
    try {
      expect((await putWebhook(loopback, user, redirecting.url)).status).toBe(200);
      const n = await settled(loopback, await notify(loopback, user), 'failed');
      expect(n.deliveries[0].attempts).toBe(1);
      expect(n.deliveries[0].lastError).toMatch(/HTTP 302 \(redirects are not followed\)/);
      await sleep(300);
      expect(redirecting.received).toHaveLength(1);
      expect(receivedFor(user)).toHaveLength(0);
    } finally {
      await redirecting.close();
    }
  });

  it('an allowed destination that does not answer says only "could not connect", and is retried', async () => {
    const closed = await startReceiver();
    const closedUrl = closed.url;
    await closed.close();
    const user = `eg-closed-${++userSeq}`;
    expect((await putWebhook(loopback, user, closedUrl)).status).toBe(200);
    const n = await settled(loopback, await notify(loopback, user), 'dead');
    expect(n.deliveries[0].attempts).toBe(3);
    expect(n.deliveries[0].lastError).toBe('request failed: could not connect');
    const failures = n.timeline.filter((e: any) => e.event === 'attempt_failed');
    for (const f of failures) expect(f.detail.error).toBe('request failed: could not connect');
  });
});

describe('a profile written while allowed, delivered after a restart without the allowance (postgres)', () => {
  it('is refused at delivery, and the receiver sees nothing', async () => {
    const db = await freshPostgresUrl();
    let second: TestHerald | null = null;
    try {
      const first = await startTestHerald({ store: 'postgres', databaseUrl: db.url, env: RETRY_ENV });
      const user = 'eg-restart';
      try {
        expect((await putWebhook(first, user, at('localhost'))).status).toBe(200);
      } finally {
        await first.stop();
      }
      second = await startTestHerald({
        store: 'postgres',
        databaseUrl: db.url,
        env: { ...RETRY_ENV, HERALD_EGRESS_ALLOW: '' },
      });
      expect((await second.api('GET', `/v1/users/${user}`)).json.webhookUrl).toBe(at('localhost'));
      const n = await settled(second, await notify(second, user), 'failed');
      expect(n.deliveries[0].attempts).toBe(1);
      expect(n.deliveries[0].lastError).toMatch(
        /^destination localhost resolves to (127\.0\.0\.1|::1).*HERALD_EGRESS_ALLOW/,
      );
      expect(receivedFor(user)).toHaveLength(0);
    } finally {
      await second?.stop();
      await db.drop();
    }
  });
});
