/** What RedisPresence leaves in Redis: every key expires if nobody refreshes it (the port's behaviour is in test/presence.contract.test.ts). */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { freshPrefix, sharedRedisUrl } from '../../test/support/redis.ts';
import { connectRedis, type RedisClient } from '../redis-connection.ts';
import { RedisPresence } from './presence-redis.ts';

const clients: RedisClient[] = [];
afterAll(() => {
  for (const c of clients) c.disconnect();
});

async function keysOf(client: RedisClient, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) out.set(k, await client.pttl(k));
  } while (cursor !== '0');
  return out;
}

describe('RedisPresence in Redis', () => {
  it('gives every key an expiry: ttl while a node holds the user, lastSeen once nobody does', async () => {
    const client = connectRedis(await sharedRedisUrl());
    clients.push(client);
    const prefix = freshPrefix();
    const p = new RedisPresence(client, { prefix, ttlMs: 5_000, lastSeenMs: 50_000 });
    await p.opened('g1', 'held');
    await p.opened('g1', 'left');
    await p.closed('g1', 'left');
    await p.refresh('g2', new Map([['beat', 2]]));
    await p.refresh('g1', new Map([['held', 1]]));
    const keys = await keysOf(client, prefix);
    expect([...keys.keys()].sort()).toEqual(
      [
        `${prefix}herald:p:{beat}`,
        `${prefix}herald:p:{held}`,
        `${prefix}herald:p:{left}`,
        `${prefix}{herald:nodes}`,
      ].sort(),
    );
    for (const [key, pttl] of keys) expect(pttl, key).toBeGreaterThan(0);
    expect(keys.get(`${prefix}herald:p:{held}`)).toBeLessThanOrEqual(5_000);
    expect(keys.get(`${prefix}herald:p:{left}`)).toBeGreaterThan(5_000);
    expect(await client.hgetall(`${prefix}herald:p:{left}`)).toEqual({ seen: expect.any(String) });
  });

  it('names a node that opened after this process last fetched the node set, within the same millisecond', async () => {
    const url = await sharedRedisUrl();
    const [ca, cb] = [connectRedis(url), connectRedis(url)];
    clients.push(ca, cb);
    const prefix = freshPrefix();
    const [a, b] = [new RedisPresence(ca, { prefix }), new RedisPresence(cb, { prefix })];
    // A clock that does not move: a fetch and the next lookup share their millisecond.
    const now = vi.spyOn(Date, 'now').mockReturnValue(Date.now());
    try {
      await a.opened('g1', 'u');
      expect(await b.nodesOf(['u'])).toEqual(new Map([['u', ['g1']]]));
      await a.opened('g-new', 'u');
      expect((await b.nodesOf(['u'])).get('u')?.sort()).toEqual(['g-new', 'g1']);
    } finally {
      now.mockRestore();
    }
  });
});
