/**
 * Routed real time across processes (the distributed mode: PostgreSQL + Redis): a notification
 * posted to an api process reaches the user's socket on whichever gateway holds it — through the
 * worker that delivers it and Redis — and no other gateway receives that frame. Each Herald here is a
 * separate instance with its own roles, its own Redis connections and its own node name, as separate
 * processes would be (the chaos suite, chaos/, runs them as real processes). Redis is a private
 * server of this file's, so that its keys and streams are nobody else's — and once a private
 * three-node Redis Cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPostgresUrl } from './support/databases.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { userToken } from './support/http.ts';
import { type PrivateCluster, type PrivateRedis, privateCluster, privateRedis } from './support/redis.ts';
import { connectReady, type RealtimeClient } from './support/ws-client.ts';

/** The e2e latency target of the project (docs/benchmarks.md): p99 ≤ 20 ms; a test on a busy machine gets more room. */
const ROUTED_WITHIN_MS = 2_000;

function framesReceived(h: TestHerald): number {
  return h.herald.adapters.live.received;
}

describe.each([
  { busKind: 'queue-table', redisKind: 'redis' },
  { busKind: 'redis-streams', redisKind: 'redis' },
  { busKind: 'redis-streams', redisKind: 'cluster' },
])('routed real time across processes (HERALD_BUS=$busKind, $redisKind)', ({ busKind, redisKind }) => {
  let redis: PrivateRedis | PrivateCluster;
  let db: { url: string; drop(): Promise<void> };
  let api: TestHerald;
  let worker: TestHerald;
  let gateway1: TestHerald;
  let gateway2: TestHerald;
  const clients: RealtimeClient[] = [];

  beforeAll(async () => {
    // A three-node Redis Cluster: REDIS_URL names its nodes, separated by commas.
    redis = redisKind === 'cluster' ? await privateCluster() : await privateRedis();
    db = await freshPostgresUrl();
    const start = (roles: ('api' | 'worker' | 'gateway' | 'scheduler')[]) =>
      startTestHerald({
        store: 'postgres',
        databaseUrl: db.url,
        roles,
        // Topics of more than 10 subscribers get their in-app channel by fan-out on read.
        env: { REDIS_URL: redis.url, HERALD_BUS: busKind, HERALD_FANOUT_ON_READ_ABOVE: '10' },
      });
    api = await start(['api']);
    worker = await start(['worker', 'scheduler']);
    gateway1 = await start(['gateway']);
    gateway2 = await start(['gateway']);
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => {});
    for (const h of [gateway2, gateway1, worker, api]) await h?.stop().catch(() => {});
    await db?.drop();
    await redis?.cleanup();
  });

  it('a user on gateway 2 gets a notification posted to the api process; gateway 1 never receives it', async () => {
    const { client: alice } = await connectReady(gateway2.url, userToken('alice'));
    const { client: bob } = await connectReady(gateway1.url, userToken('bob'));
    clients.push(alice, bob);
    const before = { g1: framesReceived(gateway1), g2: framesReceived(gateway2) };

    const sent = 20;
    const latencies: number[] = [];
    for (let i = 0; i < sent; i++) {
      const at = performance.now();
      const r = await api.api('POST', '/v1/notifications', {
        to: ['alice'],
        category: 'test.routing',
        channels: ['in_app'],
        title: `n${i}`,
      });
      expect(r.status, JSON.stringify(r.json)).toBe(202);
      await alice.waitFor((m) => m.type === 'notification' && m.title === `n${i}`, `n${i}`, ROUTED_WITHIN_MS);
      latencies.push(performance.now() - at);
    }
    const seqs = alice.notifications().map((m) => m.seq as number);
    const delivered = new Set(seqs).size;
    const duplicated = seqs.length - delivered;
    const lost = sent - delivered;
    latencies.sort((a, b) => a - b);
    console.log(
      `routing (${busKind}, ${redisKind}): sent=${sent} delivered=${delivered} lost=${lost} duplicated=${duplicated} ` +
        `POST→socket p50=${latencies[Math.floor(sent / 2)]?.toFixed(1)} ms max=${latencies.at(-1)?.toFixed(1)} ms; ` +
        `frames from Redis: gateway1=${framesReceived(gateway1) - before.g1} gateway2=${framesReceived(gateway2) - before.g2}`,
    );
    expect({ lost, duplicated }).toEqual({ lost: 0, duplicated: 0 });
    expect(seqs).toEqual(Array.from({ length: sent }, (_, i) => i + 1));
    // Every frame for alice went to gateway 2 only; bob's socket on gateway 1 got nothing.
    expect(framesReceived(gateway2) - before.g2).toBeGreaterThanOrEqual(sent);
    expect(framesReceived(gateway1) - before.g1).toBe(0);
    expect(bob.notifications()).toEqual([]);
  });

  it('presence counts sockets across gateways, seen from the api process', async () => {
    const { client: a } = await connectReady(gateway1.url, userToken('carol'));
    const { client: b } = await connectReady(gateway2.url, userToken('carol'));
    clients.push(a, b);
    const r = await api.api('GET', '/v1/users/carol/presence');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ userId: 'carol', online: true, sockets: 2 });
    await a.close();
    await eventually(async () => {
      const p = await api.api('GET', '/v1/users/carol/presence');
      return p.json.sockets === 1 ? p.json : undefined;
    }, 'carol down to one socket');
  });

  it('a topic notification reaches its subscribers live on whichever gateway holds them', async () => {
    const topic = `t-${busKind}-${redisKind}`;
    const put = await api.api('PUT', `/v1/topics/${topic}/subscribers`, { userIds: ['erin', 'frank', 'gus'] });
    expect(put.status).toBe(200);
    const { client: erin } = await connectReady(gateway2.url, userToken('erin'));
    const { client: frank } = await connectReady(gateway1.url, userToken('frank'));
    clients.push(erin, frank);
    const r = await api.api('POST', '/v1/notifications', {
      to: { topic },
      category: 'test.routing',
      channels: ['in_app'],
      title: 'to the topic',
    });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    // The worker's fan-out page writes the entries and routes those of connected subscribers.
    for (const c of [erin, frank]) {
      const [n] = await c.waitForNotifications(1, ROUTED_WITHIN_MS);
      expect(n).toMatchObject({ title: 'to the topic', seq: 1 });
    }
  });

  it('a topic notification read on read reaches its connected subscribers live on every gateway', async () => {
    const topic = `big-${busKind}-${redisKind}`;
    const subscribers = ['hank', 'ivy', ...Array.from({ length: 10 }, (_, i) => `offline-${i}`)];
    const put = await api.api('PUT', `/v1/topics/${topic}/subscribers`, { userIds: subscribers });
    expect(put.status).toBe(200);
    const { client: hank } = await connectReady(gateway1.url, userToken('hank'));
    const { client: ivy } = await connectReady(gateway2.url, userToken('ivy'));
    clients.push(hank, ivy);
    const r = await api.api('POST', '/v1/notifications', {
      to: { topic },
      category: 'test.routing',
      channels: ['in_app'],
      title: 'to the big topic',
    });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    // No fan-out job writes entries: each gateway is told, and reads it for the users it holds.
    for (const c of [hank, ivy]) {
      const [n] = await c.waitForNotifications(1, ROUTED_WITHIN_MS);
      expect(n).toMatchObject({ title: 'to the big topic', seq: 1 });
    }
  });

  it("a read on one gateway updates the user's unread count on the other", async () => {
    const { client: phone } = await connectReady(gateway1.url, userToken('dave'));
    const { client: laptop } = await connectReady(gateway2.url, userToken('dave'));
    clients.push(phone, laptop);
    const r = await api.api('POST', '/v1/notifications', {
      to: ['dave'],
      category: 'test.routing',
      channels: ['in_app'],
      title: 'x',
    });
    expect(r.status).toBe(202);
    const [n] = await phone.waitForNotifications(1);
    await laptop.waitForNotifications(1);
    const from = laptop.messages.length;
    phone.send({ type: 'read', seq: n?.seq });
    const unread = await laptop.waitFor((m) => m.type === 'unread', 'unread on the other gateway', 5_000, from);
    expect(unread.unreadCount).toBe(0);
  });
});
