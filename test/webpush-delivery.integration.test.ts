/**
 * The `push` channel through Web Push end to end, on both stores, the way an operator runs it:
 * Herald is a child process (`node --import tsx src/cli.ts start`) that trusts the local push
 * service's self-signed certificate through NODE_EXTRA_CA_CERTS, as production trusts a CA. The
 * push service (test/support/fake-webpush.ts) verifies the VAPID JWT and decrypts every payload.
 *
 * A device registered over the API receives the notification (title and body decrypt); a 410
 * removes the device after one attempt, with the removal in the timeline, and the next
 * notification does not contact it; a 500 is retried; and a loopback endpoint is never connected
 * to once the allowance is gone.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { freshPostgresUrl } from './support/databases.ts';
import { type FakeSubscription, type FakeWebPush, type PushAnswer, startFakeWebPush } from './support/fake-webpush.ts';
import { eventually, TEST_API_KEY, testEnv } from './support/herald.ts';
import { type HeraldChild, startHeraldChild } from './support/herald-child.ts';
import { makeTestCertificate, type TestCertificate } from './support/tls-cert.ts';

const BASE_MS = 200;
const SUBJECT = 'mailto:push-ops@example.com';

describe.each(['pglite', 'postgres'] as const)('push through Web Push (%s)', (store) => {
  let cert: TestCertificate;
  let fake: FakeWebPush;
  let herald: HeraldChild;
  let dataDir: string;
  let db: { url: string; drop(): Promise<void> } | null = null;
  let env: Record<string, string>;
  let seq = 0;
  const vapid = webpush.generateVAPIDKeys();

  beforeAll(async () => {
    cert = await makeTestCertificate();
    fake = await startFakeWebPush({ vapidPublicKey: vapid.publicKey, subject: SUBJECT, tls: cert });
    dataDir = await mkdtemp(join(tmpdir(), 'herald-webpush-'));
    db = store === 'postgres' ? await freshPostgresUrl() : null;
    env = {
      ...testEnv(dataDir),
      HERALD_LOG_LEVEL: 'warn',
      HERALD_POLL_MS: '50',
      HERALD_RETRY_BASE_MS: String(BASE_MS),
      HERALD_RETRY_MAX_ATTEMPTS: '4',
      HERALD_VAPID_PUBLIC_KEY: vapid.publicKey,
      HERALD_VAPID_PRIVATE_KEY: vapid.privateKey,
      HERALD_VAPID_SUBJECT: SUBJECT,
      NODE_EXTRA_CA_CERTS: cert.certFile,
      ...(db ? { DATABASE_URL: db.url } : {}),
    };
    herald = await startHeraldChild(env);
  });

  afterAll(async () => {
    await herald?.stop();
    await fake?.close();
    await db?.drop();
    await cert?.remove();
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

  /** A new user with one Web Push device per answer; returns the user id and the devices. */
  async function pushUser(...answers: ((nth: number) => PushAnswer)[]) {
    const userId = `push-${store}-${++seq}`;
    const devices: { id: string; sub: FakeSubscription }[] = [];
    for (const answer of answers) {
      const sub = fake.subscribe(answer);
      const r = await api('POST', `/v1/users/${userId}/devices`, {
        provider: 'webpush',
        token: { endpoint: sub.endpoint, keys: sub.keys },
      });
      expect(r.status, JSON.stringify(r.json)).toBe(201);
      devices.push({ id: r.json.id, sub });
    }
    return { userId, devices };
  }

  async function notify(userId: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await api('POST', '/v1/notifications', {
      to: [userId],
      category: 'comment.reply',
      channels: ['push'],
      title: 'Ada replied',
      body: 'Looks good to me',
      data: { thread: 7 },
      ...extra,
    });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    return r.json.id as string;
  }

  async function settledAs(id: string, status: string) {
    let last: any = null;
    try {
      return await eventually(async () => {
        last = (await api('GET', `/v1/notifications/${id}`)).json;
        return last.deliveries[0]?.status === status ? last : null;
      }, `delivery of ${id} to be ${status}`);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${JSON.stringify(last?.deliveries)}; ${herald.output()}`);
    }
  }

  it('delivers to the device: the payload decrypts to the title and body; Urgency from the priority', async () => {
    const { userId, devices } = await pushUser(() => ({ status: 201 }));
    const [device] = devices;
    const id = await notify(userId, { priority: 'high' });
    const n = await settledAs(id, 'sent');
    expect(n.deliveries[0]).toMatchObject({ channel: 'push', attempts: 1, lastError: null });
    expect(fake.refused).toEqual([]);
    const got = fake.requestsFor(device!.sub);
    expect(got).toHaveLength(1);
    expect(got[0]?.payload).toEqual({
      id,
      title: 'Ada replied',
      body: 'Looks good to me',
      data: { thread: 7 },
      category: 'comment.reply',
    });
    expect(got[0]?.urgency).toBe('high');
    expect(got[0]?.claims).toMatchObject({ aud: fake.origin, sub: SUBJECT });
    expect(n.timeline.find((e: any) => e.event === 'sent').detail).toMatchObject({
      provider: 'push',
      devices: 1,
      accepted: 1,
      results: [{ id: device!.id, provider: 'webpush', result: 'accepted' }],
    });
    const listed = (await api('GET', `/v1/users/${userId}/devices`)).json.items;
    expect(listed[0].lastUsedAt).not.toBeNull();
  });

  it('a 410 removes the device after one attempt, with the removal in the timeline; it is never contacted again', async () => {
    const { userId, devices } = await pushUser(() => ({ status: 410, body: 'push subscription has unsubscribed' }));
    const [device] = devices;
    const id = await notify(userId);
    const n = await settledAs(id, 'failed');
    expect(n.deliveries[0].attempts).toBe(1);
    const removal = new RegExp(`removed dead devices: ${device!.id} \\(webpush\\): .*HTTP 410`);
    expect(n.deliveries[0].lastError).toMatch(removal);
    expect(n.timeline.find((e: any) => e.event === 'failed').detail.error).toMatch(removal);
    expect((await api('GET', `/v1/users/${userId}/devices`)).json.items).toEqual([]);

    const next = await notify(userId);
    const skipped = await settledAs(next, 'skipped');
    expect(skipped.deliveries[0].lastError).toBe(`user ${userId} has no push device`);
    expect(fake.requestsFor(device!.sub)).toHaveLength(1);
  });

  it('beside a device that accepts, a dead one is removed and listed in the sent event', async () => {
    const { userId, devices } = await pushUser(
      () => ({ status: 201 }),
      () => ({ status: 404 }),
    );
    const [alive, dead] = devices;
    const n = await settledAs(await notify(userId), 'sent');
    expect(n.timeline.find((e: any) => e.event === 'sent').detail).toMatchObject({
      accepted: 1,
      removed: 1,
      removedDevices: [{ id: dead!.id, provider: 'webpush' }],
    });
    const listed = (await api('GET', `/v1/users/${userId}/devices`)).json.items;
    expect(listed.map((d: any) => d.id)).toEqual([alive!.id]);
    await settledAs(await notify(userId), 'sent');
    expect(fake.requestsFor(dead!.sub)).toHaveLength(1);
    expect(fake.requestsFor(alive!.sub)).toHaveLength(2);
  });

  it('a 500 is retried after the backoff, then the push is sent', async () => {
    const { userId, devices } = await pushUser((nth) => (nth === 1 ? { status: 500 } : { status: 201 }));
    const n = await settledAs(await notify(userId), 'sent');
    expect(n.deliveries[0].attempts).toBe(2);
    const got = fake.requestsFor(devices[0]!.sub);
    expect(got).toHaveLength(2);
    expect(got[1]!.at - got[0]!.at).toBeGreaterThanOrEqual(BASE_MS / 2);
    expect(got[1]?.payload.title).toBe('Ada replied');
    const failed = n.timeline.filter((e: any) => e.event === 'attempt_failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].detail.error).toMatch(/HTTP 500/);
    expect((await api('GET', `/v1/users/${userId}/devices`)).json.items).toHaveLength(1);
  });

  // Last: it restarts Herald without the loopback allowance.
  it('without the allowance, a loopback endpoint is never connected to: failed, naming the setting', async () => {
    const { userId, devices } = await pushUser(() => ({ status: 201 }));
    await herald.stop();
    herald = await startHeraldChild({ ...env, HERALD_EGRESS_ALLOW: '' });
    const before = fake.connections();
    const n = await settledAs(await notify(userId), 'failed');
    expect(n.deliveries[0].attempts).toBe(1);
    expect(n.deliveries[0].lastError).toMatch(/127\.0\.0\.1.*HERALD_EGRESS_ALLOW/);
    expect(fake.connections()).toBe(before);
    expect(fake.requestsFor(devices[0]!.sub)).toEqual([]);
    // Not a dead token: the device stays.
    expect((await api('GET', `/v1/users/${userId}/devices`)).json.items).toHaveLength(1);
  });
});
