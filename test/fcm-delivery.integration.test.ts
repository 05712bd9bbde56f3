/**
 * FCM through the whole pipeline: a Herald configured with exactly the settings of the contract
 * (HERALD_FCM_SERVICE_ACCOUNT, HERALD_FCM_BASE_URL) against the local FCM fake, a device registered
 * over the API, a notification on channel `push`. The fake checks the OAuth2 assertion and the
 * access token; a token FCM calls UNREGISTERED is removed after one attempt and never used again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeFcm, startFakeFcm } from './support/fake-fcm.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

const GOOD = 'fcm-token-good-0123456789';
const DEAD = 'fcm-token-dead-0123456789';

describe.each(['pglite', 'postgres'] as const)('FCM push on %s', (store) => {
  let fake: FakeFcm;
  let t: TestHerald;

  beforeAll(async () => {
    fake = await startFakeFcm({ answer: (r) => (r.token === DEAD ? { kind: 'unregistered' } : { kind: 'accept' }) });
    t = await startTestHerald({
      store,
      env: {
        HERALD_FCM_SERVICE_ACCOUNT: fake.serviceAccountPath,
        HERALD_FCM_BASE_URL: fake.url,
        HERALD_RETRY_BASE_MS: '100',
        HERALD_RETRY_MAX_ATTEMPTS: '3',
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
    await fake?.close();
  });

  async function push(user: string, title: string) {
    const r = await t.api('POST', '/v1/notifications', {
      to: [user],
      category: 'push.test',
      channels: ['push'],
      title,
    });
    expect(r.status).toBe(202);
    return eventually(async () => {
      const n = await t.api('GET', `/v1/notifications/${r.json.id}`);
      const d = n.json.deliveries[0];
      return d && d.status !== 'pending' ? n.json : null;
    }, 'the push delivery to settle');
  }

  it('delivers to the device with the notification, authenticated with the service account', async () => {
    const user = `fcm-${store}-ok`;
    expect((await t.api('POST', `/v1/users/${user}/devices`, { provider: 'fcm', token: GOOD })).status).toBe(201);
    const before = fake.received.length;
    const n = await push(user, 'Hello phone');
    expect(n.deliveries[0].status).toBe('sent');
    const got = fake.received.slice(before).filter((r) => r.token === GOOD);
    expect(got).toHaveLength(1);
    expect(got[0]?.message).toMatchObject({ token: GOOD, notification: { title: 'Hello phone' } });
    expect(fake.refused).toEqual([]);
    const devices = await t.api('GET', `/v1/users/${user}/devices`);
    expect(devices.json.items[0].lastUsedAt).not.toBeNull();
  });

  it('removes a token FCM calls UNREGISTERED after one attempt, and never sends to it again', async () => {
    const user = `fcm-${store}-dead`;
    expect((await t.api('POST', `/v1/users/${user}/devices`, { provider: 'fcm', token: DEAD })).status).toBe(201);
    const first = await push(user, 'One');
    expect(first.deliveries[0]).toMatchObject({ status: 'failed', attempts: 1 });
    expect(first.deliveries[0].lastError).toMatch(/removed dead devices/);
    expect((await t.api('GET', `/v1/users/${user}/devices`)).json.items).toEqual([]);
    const sentToDead = fake.received.filter((r) => r.token === DEAD).length;
    expect(sentToDead).toBe(1);
    const second = await push(user, 'Two');
    expect(second.deliveries[0].status).toBe('skipped');
    expect(fake.received.filter((r) => r.token === DEAD)).toHaveLength(sentToDead);
  });
});
