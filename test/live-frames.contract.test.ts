/**
 * The LiveFrames port's contract, run against every adapter. A "process" is one Presence + LiveFrames
 * pair with connections of its own; adapters that route between processes (Redis, Redis Cluster) run
 * the routing cases with three gateway processes g1, g2, g3 and a worker process that publishes.
 */
import { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { LiveFrames, LiveHandler, Presence, RoutedFrame } from '../src/core/ports-realtime.ts';
import { MemoryLiveFrames } from '../src/realtime/live-memory.ts';
import { RedisLiveFrames } from '../src/realtime/live-redis.ts';
import { MemoryPresence } from '../src/realtime/presence-memory.ts';
import { RedisPresence } from '../src/realtime/presence-redis.ts';
import { connectRedis, type RedisClient } from '../src/redis-connection.ts';
import { freshPrefix, type PrivateCluster, privateCluster, privateRedis, sharedRedisUrl } from './support/redis.ts';

interface Proc {
  presence: Presence;
  live: LiveFrames;
}

interface World {
  /** Key and channel prefix of this world (Redis). */
  prefix?: string;
  /** Another process on the same backend (same presence data, same channels). */
  process(): Promise<Proc>;
}

interface LiveAdapter {
  name: string;
  /** True when frames travel between processes (and are routed by presence). */
  routes: boolean;
  world(): Promise<World>;
}

const clients: RedisClient[] = [];
const opened: LiveFrames[] = [];
let cluster: Promise<PrivateCluster> | null = null;
afterAll(async () => {
  for (const l of opened) await l.close();
  for (const c of clients) c.disconnect();
  if (cluster) await (await cluster).cleanup();
});

function redisWorld(url: string): World {
  const prefix = freshPrefix();
  return {
    prefix,
    async process() {
      const client = connectRedis(url);
      clients.push(client);
      const presence = new RedisPresence(client, { prefix, ttlMs: 10_000 });
      const live = new RedisLiveFrames(client, presence, { prefix });
      opened.push(live);
      return { presence, live };
    },
  };
}

const ADAPTERS: LiveAdapter[] = [
  {
    name: 'memory',
    routes: false,
    async world() {
      const presence = new MemoryPresence({ ttlMs: 10_000 });
      return { process: async () => ({ presence, live: new MemoryLiveFrames() }) };
    },
  },
  { name: 'redis', routes: true, world: async () => redisWorld(await sharedRedisUrl()) },
  {
    name: 'redis cluster',
    routes: true,
    async world() {
      cluster ??= privateCluster();
      return redisWorld((await cluster).url);
    },
  },
];

interface Recorder extends LiveHandler {
  got: RoutedFrame[];
  resyncs: number;
  topics: number;
}

function recorder(): Recorder {
  const r: Recorder = {
    got: [],
    resyncs: 0,
    topics: 0,
    frames(frames) {
      // Copies: a frame may be a view of a message buffer.
      for (const f of frames) r.got.push({ userId: f.userId, seq: f.seq, frame: Buffer.from(f.frame) });
    },
    resync() {
      r.resyncs++;
    },
    topicAccepted() {
      r.topics++;
    },
  };
  return r;
}

const frame = (userId: string, seq: number | null, text = `{"seq":${seq}}`): RoutedFrame => ({
  userId,
  seq,
  frame: Buffer.from(text),
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const summary = (r: Recorder) => r.got.map((f) => `${f.userId}:${f.seq}:${f.frame.toString()}`);

/** Gateways g1..gN subscribed, each its own process, and one more process that only publishes. */
async function gateways(world: World, n: number) {
  const gs: (Proc & { rec: Recorder })[] = [];
  for (let i = 1; i <= n; i++) {
    const p = await world.process();
    const rec = recorder();
    await p.live.subscribe(`g${i}`, rec);
    gs.push({ ...p, rec });
  }
  const worker = await world.process();
  return { gs, worker };
}

/** Waits long enough for a frame that would (wrongly) be on its way to arrive. */
const SETTLE_MS = 150;

describe.each(ADAPTERS)('LiveFrames contract: $name', (adapter) => {
  it("delivers a frame for a user held on this process's node to its handler, bytes, seq and order intact", async () => {
    const world = await adapter.world();
    const p = await world.process();
    const rec = recorder();
    await p.live.subscribe('g1', rec);
    await p.presence.opened('g1', 'u');
    const sent = [frame('u', 1), frame('u', null, '{"type":"unread","count":1}'), frame('u', 2, '{"t":"é"}')];
    await p.live.publish(sent);
    await p.live.publish([]);
    // Frames for this process's own node do not travel: they are there when publish resolves.
    expect(summary(rec)).toEqual(['u:1:{"seq":1}', 'u:null:{"type":"unread","count":1}', 'u:2:{"t":"é"}']);
    expect(p.live.received).toBe(0);
    await p.live.close();
  });
});

describe.each(ADAPTERS.filter((a) => a.routes))('LiveFrames contract between processes: $name', (adapter) => {
  it('routes a frame only to the node holding its user, not to every node', async () => {
    const { gs, worker } = await gateways(await adapter.world(), 3);
    const [g1, g2, g3] = gs as [(typeof gs)[0], (typeof gs)[0], (typeof gs)[0]];
    await g2.presence.opened('g2', 'u');
    await worker.live.publish([frame('u', 1)]);
    await until('g2 to receive the frame', () => g2.rec.got.length === 1);
    await sleep(SETTLE_MS);
    expect(summary(g2.rec)).toEqual(['u:1:{"seq":1}']);
    expect(g2.live.received).toBe(1);
    expect(g1.rec.got).toEqual([]);
    expect(g3.rec.got).toEqual([]);
    expect(g1.live.received + g3.live.received + worker.live.received).toBe(0);
  });

  it('sends a user held on two nodes to both, and a user on none to nobody', async () => {
    const { gs, worker } = await gateways(await adapter.world(), 3);
    const [g1, g2, g3] = gs as [(typeof gs)[0], (typeof gs)[0], (typeof gs)[0]];
    await g1.presence.opened('g1', 'both');
    await g3.presence.opened('g3', 'both');
    await worker.live.publish([frame('nobody', 1), frame('both', 7), frame('nobody', 2)]);
    await until('g1 and g3 to receive', () => g1.rec.got.length === 1 && g3.rec.got.length === 1);
    await sleep(SETTLE_MS);
    expect(summary(g1.rec)).toEqual(['both:7:{"seq":7}']);
    expect(summary(g3.rec)).toEqual(['both:7:{"seq":7}']);
    expect(g2.rec.got).toEqual([]);
    expect([g1.live.received, g2.live.received, g3.live.received]).toEqual([1, 0, 1]);
  });

  /**
   * g1 holds a and b, g2 holds b; `batch` then two more frames are published without waiting in
   * between: each node gets its users' frames, and only those, in the order published.
   */
  async function publishesInOrder(batch: RoutedFrame[]) {
    const { gs, worker } = await gateways(await adapter.world(), 2);
    const [g1, g2] = gs as [(typeof gs)[0], (typeof gs)[0]];
    await g1.presence.opened('g1', 'a');
    await g1.presence.opened('g1', 'b');
    await g2.presence.opened('g2', 'b');
    const more = [frame('b', 201), frame('a', 202)];
    // Not awaited one by one: the second publish must still not overtake the first.
    await Promise.all([worker.live.publish(batch), worker.live.publish(more)]);
    const held = [...batch, ...more].filter((f) => f.userId === 'a' || f.userId === 'b');
    const expected1 = held.map((f) => `${f.userId}:${f.seq}:{"seq":${f.seq}}`);
    const expected2 = held.filter((f) => f.userId === 'b').map((f) => `b:${f.seq}:{"seq":${f.seq}}`);
    await until(
      'both nodes to receive everything',
      () => g1.rec.got.length === expected1.length && g2.rec.got.length === expected2.length,
    );
    expect(summary(g1.rec)).toEqual(expected1);
    expect(summary(g2.rec)).toEqual(expected2);
  }

  it('keeps the order of one publish, per node, and of successive publishes', async () => {
    const batch: RoutedFrame[] = [];
    for (let seq = 1; seq <= 200; seq++) batch.push(frame(seq % 3 === 0 ? 'b' : 'a', seq));
    await publishesInOrder(batch);
  });

  it('keeps that order when a publish of many users (looked up first) is followed by one of a few', async () => {
    // 40 users, most held by nobody: more than a single server routes in one script.
    const users = ['a', 'b', ...Array.from({ length: 38 }, (_, i) => `nobody-${i}`)];
    const batch: RoutedFrame[] = [];
    for (let seq = 1; seq <= 200; seq++) batch.push(frame(users[seq % users.length] as string, seq));
    await publishesInOrder(batch);
  });

  it('tells every live gateway node, and no other, that a topic notification was accepted', async () => {
    if (!adapter.routes) {
      const p = await (await adapter.world()).process();
      const rec = recorder();
      await p.live.subscribe('g1', rec);
      await p.live.topicAccepted();
      expect(rec.topics).toBe(1);
      return;
    }
    const { gs, worker } = await gateways(await adapter.world(), 4);
    const [g1, g2, g3, g4] = gs as [(typeof gs)[0], (typeof gs)[0], (typeof gs)[0], (typeof gs)[0]];
    await g1.presence.opened('g1', 'a');
    await g2.presence.opened('g2', 'b');
    await g3.presence.refresh('g3', new Map()); // alive, holding nobody yet
    // g4 never reported: not a live node.
    await worker.live.topicAccepted();
    await until('the live nodes to be told', () => g1.rec.topics === 1 && g2.rec.topics === 1 && g3.rec.topics === 1);
    // A gateway that publishes is told in its own process, not through Redis.
    await g1.live.topicAccepted();
    await until('g1 to be told again', () => g1.rec.topics === 2 && g2.rec.topics === 2 && g3.rec.topics === 2);
    await sleep(SETTLE_MS);
    expect([g1, g2, g3, g4].map((g) => g.rec.topics)).toEqual([2, 2, 2, 0]);
    expect(g1.rec.got).toEqual([]);
  });

  it('stops routing to a node once its socket closed', async () => {
    const { gs, worker } = await gateways(await adapter.world(), 2);
    const [g1, g2] = gs as [(typeof gs)[0], (typeof gs)[0]];
    await g1.presence.opened('g1', 'u');
    await g2.presence.opened('g2', 'u');
    await g2.presence.closed('g2', 'u');
    await worker.live.publish([frame('u', 1)]);
    await until('g1 to receive', () => g1.rec.got.length === 1);
    await sleep(SETTLE_MS);
    expect(g2.rec.got).toEqual([]);
  });
});

/** The subscriber's Redis goes away and comes back: frames sent meanwhile are lost, so the gateway resyncs. */
describe('RedisLiveFrames when Redis restarts', () => {
  it('does not throw while Redis is down, and resyncs the handler once it is back and subscribed', async () => {
    const redis = await privateRedis();
    const prefix = freshPrefix();
    const mk = () => {
      const client = connectRedis(redis.url);
      clients.push(client);
      const presence = new RedisPresence(client, { prefix, ttlMs: 10_000 });
      return { presence, live: new RedisLiveFrames(client, presence, { prefix }) };
    };
    const gw = mk();
    const worker = mk();
    const rec = recorder();
    try {
      await gw.live.subscribe('g1', rec);
      await gw.presence.opened('g1', 'u');
      await worker.live.publish([frame('u', 1)]);
      await until('the first frame', () => rec.got.length === 1);
      expect(rec.resyncs).toBe(0);

      await redis.stop();
      await expect(worker.live.publish([frame('u', 2)])).resolves.toBeUndefined();
      expect((worker.live as RedisLiveFrames).failed).toBeGreaterThanOrEqual(1);

      await redis.start();
      await until('the handler to resync', () => rec.resyncs >= 1, 15_000);
      // The restarted server is empty: the gateway's next heartbeat reports what it holds.
      await gw.presence.refresh('g1', new Map([['u', 1]]));
      await worker.live.publish([frame('u', 3)]);
      await until('a frame after the restart', () => rec.got.some((f) => f.seq === 3), 10_000);
      expect(rec.got.some((f) => f.seq === 2)).toBe(false);
    } finally {
      await gw.live.close();
      await worker.live.close();
      await redis.cleanup();
    }
  });
});

/** A dropped subscriber connection (CLIENT KILL) on a single server and on a cluster: resync follows. */
describe.each([
  { name: 'redis', url: async () => sharedRedisUrl() },
  {
    name: 'redis cluster',
    url: async () => {
      cluster ??= privateCluster();
      return (await cluster).url;
    },
  },
])('RedisLiveFrames when its subscriber connection drops: $name', ({ url }) => {
  it('resyncs, and receives frames again afterwards', async () => {
    const world = redisWorld(await url());
    const { gs, worker } = await gateways(world, 1);
    const g1 = gs[0] as (typeof gs)[0];
    await g1.presence.opened('g1', 'u');
    // Kill g1's subscriber connection (named after its channel), on whichever server holds it.
    const admin = connectRedis(await url());
    clients.push(admin);
    await admin.ping(); // a cluster client knows its nodes once connected
    const servers = admin instanceof Cluster ? admin.nodes('master') : [admin];
    let killed = 0;
    for (const s of servers) {
      const list = String(await s.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
      for (const line of list.split('\n')) {
        if (!line.includes(`${world.prefix}herald:live:{g1}`)) continue;
        const id = /\bid=(\d+)/.exec(line)?.[1];
        if (id) killed += Number(await s.call('CLIENT', 'KILL', 'ID', id));
      }
    }
    expect(killed).toBeGreaterThanOrEqual(1);
    await until('the handler to resync', () => g1.rec.resyncs >= 1, 15_000);
    await worker.live.publish([frame('u', 1)]);
    await until('a frame after the drop', () => g1.rec.got.length === 1, 10_000);
    // One loss, one resync: not another for the first connect (a Cluster's subscriber group
    // announces that too), which a gateway would pay for with a store read per session.
    expect(g1.rec.resyncs).toBe(1);
  });
});
