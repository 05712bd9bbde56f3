/**
 * The Redis limiter's own promises, beyond the port's contract (test/rate-limiter.contract.test.ts):
 * an idle key costs nothing, a server that lost the script still answers, and an unreachable Redis
 * neither fails a take nor holds it, but is counted and reported.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPrefix, type PrivateRedis, privateRedis, sharedRedisUrl } from '../../test/support/redis.ts';
import { connectRedis } from '../redis-connection.ts';
import { RedisRateLimiter } from './rate-limiter-redis.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('RedisRateLimiter', () => {
  it('keeps a key only until its bucket is full again: an idle key costs nothing', async () => {
    const client = connectRedis(await sharedRedisUrl());
    const prefix = freshPrefix();
    const l = new RedisRateLimiter({ client, rps: 10, burst: 3, prefix, closeClient: true });
    const key = `${prefix}herald:rl:{idle}`;
    for (let i = 0; i < 3; i++) expect((await l.take('idle')).allowed).toBe(true);
    // Three tokens owed at 10 a second: full again in 300 ms, and the key expires then.
    const ttl = await client.pttl(key);
    expect(ttl).toBeGreaterThan(200);
    expect(ttl).toBeLessThanOrEqual(300);
    expect(await client.hget(key, 'tat')).toMatch(/^\d+(\.\d+)?$/);
    await sleep(350);
    expect(await client.exists(key)).toBe(0);
    // Absent is full: the whole burst again.
    for (let i = 0; i < 3; i++) expect((await l.take('idle')).allowed).toBe(true);
    expect((await l.take('idle')).allowed).toBe(false);
    await l.close();
  });

  describe('with a Redis of its own', () => {
    let redis: PrivateRedis;
    beforeAll(async () => {
      redis = await privateRedis();
    });
    afterAll(async () => {
      await redis?.cleanup();
    });

    it('still answers after the server forgot its scripts (EVALSHA falls back to EVAL)', async () => {
      const l = new RedisRateLimiter({ client: connectRedis(redis.url), rps: 1, burst: 2, closeClient: true });
      expect((await l.take('k', 0)).allowed).toBe(true);
      await redis.client().script('FLUSH');
      expect((await l.take('k', 0)).allowed).toBe(true);
      expect((await l.take('k', 0)).allowed).toBe(false);
      expect(l.decidedLocally).toBe(0);
      await l.close();
    });

    it('Redis stopped: takes are answered at once by a bucket of this process, counted and reported once; Redis back: shared again', async () => {
      const outages: unknown[] = [];
      const client = connectRedis(redis.url);
      // Whoever owns a connection listens for its errors (wiring logs them); here they are expected.
      client.on('error', () => {});
      const l = new RedisRateLimiter({
        client,
        rps: 0.001,
        burst: 2,
        timeoutMs: 200,
        closeClient: true,
        onUnavailable: (e) => outages.push(e),
      });
      expect((await l.take('before')).allowed).toBe(true);
      expect(l.decidedLocally).toBe(0);

      await redis.stop({ kill: true });
      const decisions = [];
      const started = performance.now();
      for (let i = 0; i < 3; i++) decisions.push(await l.take('k'));
      const tookMs = performance.now() - started;
      // Fail open to the limit one process keeps: its burst is served, then it refuses (no free-for-all).
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, false]);
      expect(decisions[2]?.retryAfterSeconds).toBeGreaterThan(900);
      expect(l.decidedLocally).toBe(3);
      expect(outages).toHaveLength(1);
      // Never held longer than the timeout per take (the first may wait for it; then Redis is known down).
      expect(tookMs).toBeLessThan(3 * 200 + 100);

      await redis.start();
      // ioredis reconnects within a second (src/redis-connection.ts): then Redis decides again.
      const until = Date.now() + 5_000;
      let counted = l.decidedLocally;
      for (;;) {
        counted = l.decidedLocally;
        await l.take('after');
        if (l.decidedLocally === counted) break;
        if (Date.now() > until) throw new Error('takes never went back to Redis after it restarted');
        await sleep(100);
      }
      // The restarted server is empty: the key it served is there now, on Redis.
      expect(await redis.client().exists('herald:rl:{after}')).toBe(1);
      expect(outages).toHaveLength(1);
      await l.close();
    });
  });
});
