/** The Presence port's contract, run against every presence adapter. */
import { afterAll, describe, expect, it } from 'vitest';
import type { Presence } from '../src/core/ports-realtime.ts';
import { MemoryPresence } from '../src/realtime/presence-memory.ts';
import { RedisPresence } from '../src/realtime/presence-redis.ts';
import { connectRedis, type RedisClient } from '../src/redis-connection.ts';
import { freshPrefix, type PrivateCluster, privateCluster, sharedRedisUrl } from './support/redis.ts';

interface PresenceAdapter {
  name: string;
  /** A fresh, empty presence whose nodes count for `ttlMs` after their last report. */
  open(ttlMs: number): Promise<Presence>;
  /** Two processes' views of one fresh presence (in-process: the same one). */
  openPair(ttlMs: number): Promise<[Presence, Presence]>;
}

/** Clients opened by the Redis adapters, closed after the file (a presence does not own its client). */
const clients: RedisClient[] = [];
let cluster: Promise<PrivateCluster> | null = null;
afterAll(async () => {
  for (const c of clients) c.disconnect();
  if (cluster) await (await cluster).cleanup();
});

async function redisClient(url: string): Promise<RedisClient> {
  const c = connectRedis(url);
  clients.push(c);
  return c;
}

/** The cluster starts once, on first use (only the cluster cases pay for it). */
async function clusterUrl(): Promise<string> {
  cluster ??= privateCluster();
  return (await cluster).url;
}

const ADAPTERS: PresenceAdapter[] = [
  {
    name: 'memory',
    open: async (ttlMs) => new MemoryPresence({ ttlMs }),
    async openPair(ttlMs) {
      const p = new MemoryPresence({ ttlMs });
      return [p, p];
    },
  },
  redisAdapter('redis', sharedRedisUrl),
  redisAdapter('redis cluster', clusterUrl),
];

function redisAdapter(name: string, url: () => Promise<string>): PresenceAdapter {
  return {
    name,
    open: async (ttlMs) => new RedisPresence(await redisClient(await url()), { prefix: freshPrefix(), ttlMs }),
    async openPair(ttlMs) {
      const prefix = freshPrefix();
      // Each with a client of its own, as two processes would be.
      return [
        new RedisPresence(await redisClient(await url()), { prefix, ttlMs }),
        new RedisPresence(await redisClient(await url()), { prefix, ttlMs }),
      ];
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(ADAPTERS)('Presence contract: $name', (adapter) => {
  it('an unknown user is offline and was never seen', async () => {
    const p = await adapter.open(10_000);
    expect(await p.get('nobody')).toEqual({ online: false, sockets: 0, lastSeen: null });
    expect(await p.nodesOf(['nobody'])).toEqual(new Map());
    await p.close();
  });

  it('counts sockets per user across nodes, and names the nodes that hold each user', async () => {
    const p = await adapter.open(10_000);
    await p.opened('g1', 'a');
    await p.opened('g1', 'a');
    await p.opened('g2', 'a');
    await p.opened('g2', 'b');
    expect(await p.get('a')).toMatchObject({ online: true, sockets: 3 });
    expect(await p.get('b')).toMatchObject({ online: true, sockets: 1 });
    const nodes = await p.nodesOf(['a', 'b', 'c']);
    expect(nodes.get('a')?.sort()).toEqual(['g1', 'g2']);
    expect(nodes.get('b')).toEqual(['g2']);
    expect(nodes.has('c')).toBe(false);
    await p.close();
  });

  it('forgets a closed socket and remembers when the user was last seen', async () => {
    const p = await adapter.open(10_000);
    const before = Date.now();
    await p.opened('g1', 'a');
    await p.opened('g2', 'a');
    await p.closed('g1', 'a');
    expect(await p.nodesOf(['a'])).toEqual(new Map([['a', ['g2']]]));
    await p.closed('g2', 'a');
    const r = await p.get('a');
    expect(r).toMatchObject({ online: false, sockets: 0 });
    expect(r.lastSeen?.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(await p.nodesOf(['a'])).toEqual(new Map());
    await p.close();
  });

  it("a heartbeat replaces what its node reported, and leaves other nodes' reports alone", async () => {
    const p = await adapter.open(10_000);
    await p.opened('g1', 'a');
    await p.opened('g1', 'b');
    await p.opened('g2', 'b');
    await p.refresh(
      'g1',
      new Map([
        ['a', 2],
        ['c', 1],
      ]),
    );
    expect(await p.get('a')).toMatchObject({ online: true, sockets: 2 });
    expect(await p.get('b')).toMatchObject({ online: true, sockets: 1 });
    expect(await p.nodesOf(['b'])).toEqual(new Map([['b', ['g2']]]));
    expect(await p.get('c')).toMatchObject({ online: true, sockets: 1 });
    await p.close();
  });

  it('stops counting a node whose heartbeat lapsed (it died), and counts it again once it reports', async () => {
    const p = await adapter.open(300);
    await p.opened('dead', 'a');
    await p.opened('alive', 'a');
    for (let i = 0; i < 4; i++) {
      await sleep(150);
      await p.refresh('alive', new Map([['a', 1]]));
    }
    expect(await p.get('a')).toMatchObject({ online: true, sockets: 1 });
    expect(await p.nodesOf(['a'])).toEqual(new Map([['a', ['alive']]]));
    expect(await p.nodes()).toEqual(['alive']);
    await p.refresh('dead', new Map([['a', 1]]));
    expect((await p.nodes()).sort()).toEqual(['alive', 'dead']);
    expect(await p.get('a')).toMatchObject({ sockets: 2 });
    await p.close();
  });

  it("sees another process's reports, including a node it has not heard of since it last looked", async () => {
    const [a, b] = await adapter.openPair(10_000);
    await a.opened('g1', 'u');
    expect(await b.nodesOf(['u'])).toEqual(new Map([['u', ['g1']]]));
    // A gateway that starts now: once its open is acknowledged, every process routes to it at once.
    await a.opened('g-new', 'u');
    expect((await b.nodesOf(['u'])).get('u')?.sort()).toEqual(['g-new', 'g1']);
    expect(await b.get('u')).toMatchObject({ online: true, sockets: 2 });
    await b.refresh('g2', new Map([['v', 3]]));
    expect(await a.get('v')).toMatchObject({ online: true, sockets: 3 });
    expect((await a.nodes()).sort()).toEqual(['g-new', 'g1', 'g2']);
    await a.close();
    await b.close();
  });

  it('a heartbeat drops the users its node no longer holds, also ones it only reported by opening', async () => {
    const p = await adapter.open(10_000);
    await p.refresh('g1', new Map([['a', 1]]));
    await p.opened('g1', 'b');
    await p.refresh('g1', new Map([['c', 1]]));
    expect(await p.nodesOf(['a', 'b', 'c'])).toEqual(new Map([['c', ['g1']]]));
    expect(await p.get('a')).toMatchObject({ online: false, sockets: 0 });
    expect((await p.get('a')).lastSeen).toBeInstanceOf(Date);
    await p.close();
  });
});
