/**
 * The Redis Streams bus forgets the consumers of processes that are gone: every process has a
 * consumer name of its own, so each deploy or crash would otherwise leave names in every lane's
 * group for ever. A consumer goes only when it holds nothing (what a dead one held was taken over by
 * XAUTOCLAIM) and has been idle far longer than a live one ever is.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RedisStreamsBus } from '../src/bus/bus-redis-streams.ts';
import { connectRedis, type RedisClient } from '../src/redis-connection.ts';
import { freshPrefix, sharedRedisUrl } from './support/redis.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function consumers(client: RedisClient, key: string): Promise<string[]> {
  const rows = (await client.xinfo('CONSUMERS', key, 'herald')) as unknown[][];
  return rows.map((r) => String(r[r.indexOf('name') + 1])).sort();
}

describe('Redis Streams bus: consumers of processes that are gone', () => {
  it('are removed once idle and holding nothing; one still holding entries is kept', async () => {
    const client = connectRedis(await sharedRedisUrl());
    cleanups.push(async () => client.disconnect());
    const prefix = freshPrefix();
    const options = { prefix, visibilityMs: 10, pruneIdleMs: 300, pruneEveryMs: 0 };
    const make = (consumer: string) => {
      const bus = new RedisStreamsBus(client, { ...options, consumer });
      cleanups.push(() => bus.close());
      return bus;
    };
    const key = `${prefix}{herald:bus:normal}:ready`;
    const gone = make('gone');
    const holding = make('holding');
    await gone.publish([{ id: 'a', lane: 'normal', runAt: new Date() }]);
    expect(await gone.claim('normal', 1)).toEqual({ ids: ['a'] });
    await gone.ack('normal', ['a']);
    await holding.publish([{ id: 'b', lane: 'normal', runAt: new Date() }]);
    expect(await holding.claim('normal', 1)).toEqual({ ids: ['b'] });
    expect(await consumers(client, key)).toEqual(['gone', 'holding']);

    await sleep(400);
    // A live process's claim tidies the group: `gone` goes; `holding` still holds b (unacked), so it
    // stays, and the same claim takes b over (XAUTOCLAIM, visibility 10 ms).
    const live = make('live');
    expect(await live.claim('normal', 10)).toEqual({ ids: ['b'] });
    expect(await consumers(client, key)).toEqual(['holding', 'live']);
    // Next time round `holding` holds nothing either, and has been idle long enough: it goes too.
    await sleep(400);
    await live.ack('normal', ['b']);
    await live.claim('normal', 10);
    expect(await consumers(client, key)).toEqual(['live']);
  });
});
