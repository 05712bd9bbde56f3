/**
 * The RateLimiter port's contract, run against every adapter: in-process, Redis (the shared server,
 * a fresh key prefix per limiter) and a three-node Redis Cluster started once for this file. Time is
 * injected (`take(key, now)`, milliseconds), so the guarantees are checked exactly, not against a
 * loaded machine's timers. Redis missing fails these tests with the command that starts it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RateLimiter } from '../src/core/ports-channels.ts';
import { MemoryRateLimiter } from '../src/ratelimit/rate-limiter-memory.ts';
import { RedisRateLimiter } from '../src/ratelimit/rate-limiter-redis.ts';
import { connectRedis } from '../src/redis-connection.ts';
import { seededRandom } from './support/random.ts';
import { freshPrefix, type PrivateCluster, privateCluster, sharedRedisUrl } from './support/redis.ts';

let cluster: PrivateCluster | undefined;
beforeAll(async () => {
  cluster = await privateCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.cleanup();
});

/**
 * A Redis limiter on a connection of its own, closed with it. The timeout is long: a take decided
 * locally because a loaded machine was slow would be a different bucket, and this suite checks Redis's.
 */
function redisLimiter(url: string, limit: { rps: number; burst: number }): RateLimiter {
  const limiter = new RedisRateLimiter({
    client: connectRedis(url),
    ...limit,
    prefix: freshPrefix(),
    timeoutMs: 10_000,
    closeClient: true,
  });
  return {
    kind: limiter.kind,
    async take(key, now) {
      const d = await limiter.take(key, now);
      // Every decision in this suite must be Redis's own.
      if (limiter.decidedLocally > 0) throw new Error('a take was decided without Redis');
      return d;
    },
    close: () => limiter.close(),
  };
}

const ADAPTERS: { name: string; open(limit: { rps: number; burst: number }): Promise<RateLimiter> }[] = [
  { name: 'memory', open: async (limit) => new MemoryRateLimiter(limit) },
  { name: 'redis', open: async (limit) => redisLimiter(await sharedRedisUrl(), limit) },
  {
    name: 'redis cluster',
    open: async (limit) => {
      if (!cluster) throw new Error('the test cluster did not start (see beforeAll)');
      return redisLimiter(cluster.url, limit);
    },
  },
];

/**
 * Arrival times (ms, ascending) that mix what clients do: bursts at one instant, runs far above the
 * rate, runs near it, and idle gaps long enough to refill the bucket.
 */
function arrivals(rand: () => number, rps: number, burst: number, count: number): number[] {
  const interval = 1000 / rps;
  const out: number[] = [];
  let t = rand() * 1000;
  while (out.length < count) {
    const mode = rand();
    const n = 1 + Math.floor(rand() * 3 * burst + 5);
    for (let i = 0; i < n && out.length < count; i++) {
      if (mode < 0.2) {
        // a burst: many at one instant
      } else if (mode < 0.5) {
        t += rand() * interval * 0.2; // far above the rate
      } else if (mode < 0.8) {
        t += interval * (0.8 + rand() * 0.4); // near the rate
      } else {
        t += rand() * interval * 3; // around and below it
      }
      out.push(t);
    }
    if (rand() < 0.15) t += rand() * interval * (burst + 2); // idle: the bucket refills, partly or fully
  }
  return out;
}

/** The largest excess, over every window [a, b] with a and b served times, of served − (rps·(b−a) + burst). */
function worstExcess(served: readonly number[], rps: number, burst: number): { excess: number; window: string } {
  let worst = { excess: Number.NEGATIVE_INFINITY, window: '' };
  for (let i = 0; i < served.length; i++) {
    for (let j = i; j < served.length; j++) {
      const a = served[i] as number;
      const b = served[j] as number;
      const excess = j - i + 1 - (rps * (b - a)) / 1000 - burst;
      if (excess > worst.excess) worst = { excess, window: `[${a}, ${b}] served ${j - i + 1}` };
    }
  }
  return worst;
}

describe.each(ADAPTERS)('RateLimiter contract: $name', (adapter) => {
  it('a fresh key is served `burst` requests at once, counting down, then refused with Retry-After ≥ 1', async () => {
    const l = await adapter.open({ rps: 2, burst: 5 });
    const seen = [];
    for (let i = 0; i < 5; i++) seen.push(await l.take('k', 1000));
    expect(seen.map((d) => d.allowed)).toEqual([true, true, true, true, true]);
    expect(seen.map((d) => d.remaining)).toEqual([4, 3, 2, 1, 0]);
    expect(seen.map((d) => d.limit)).toEqual([5, 5, 5, 5, 5]);
    expect(seen.map((d) => d.retryAfterSeconds)).toEqual([0, 0, 0, 0, 0]);
    expect(seen.map((d) => d.retryAfterMs)).toEqual([0, 0, 0, 0, 0]);
    // n tokens owed at 2 a second: full again in n / 2 seconds, rounded up.
    expect(seen.map((d) => d.resetSeconds)).toEqual([1, 1, 2, 2, 3]);

    const refused = await l.take('k', 1000);
    expect(refused).toMatchObject({ allowed: false, limit: 5, remaining: 0, resetSeconds: 3, retryAfterSeconds: 1 });
    // The next token is 500 ms away (one every 500 ms; the fifth was taken 2 s ahead of the first).
    expect(refused.retryAfterMs).toBeCloseTo(500, 3);
    await l.close();
  });

  it('Retry-After is honest: refused until then, served at it — and refused takes consume nothing', async () => {
    // One token every 10 s.
    const l = await adapter.open({ rps: 0.1, burst: 1 });
    expect((await l.take('k', 0)).allowed).toBe(true);
    const refused = await l.take('k', 500);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBe(10); // 9.5 s, rounded up
    for (let t = 1000; t < 10_000; t += 1000) expect((await l.take('k', t)).allowed, `at ${t} ms`).toBe(false);
    expect((await l.take('k', 500 + refused.retryAfterSeconds * 1000)).allowed).toBe(true);
    // Served at 10.5 s: the next token is due at 20.5 s, as if the nine refusals never happened.
    expect((await l.take('k', 20_499)).allowed).toBe(false);
    expect((await l.take('k', 20_500)).allowed).toBe(true);
    await l.close();
  });

  it('retryAfterMs is exact, for callers that wait: refused just before it, served at it', async () => {
    // One token every 5 ms (a provider's pace at 200/s), bursts of 2.
    const l = await adapter.open({ rps: 200, burst: 2 });
    await l.take('k', 100);
    await l.take('k', 100);
    const refused = await l.take('k', 101);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBe(1);
    const wait = refused.retryAfterMs as number;
    expect(wait).toBeCloseTo(4, 3);
    expect((await l.take('k', 101 + wait - 0.01)).allowed).toBe(false);
    expect((await l.take('k', 101 + wait)).allowed).toBe(true);
    await l.close();
  });

  it('an idle key refills to `burst` and no further', async () => {
    const l = await adapter.open({ rps: 10, burst: 3 });
    for (let i = 0; i < 3; i++) await l.take('k', 0);
    expect((await l.take('k', 0)).allowed).toBe(false);
    // An hour idle is worth three requests, not 36,000.
    const after = [];
    for (let i = 0; i < 5; i++) after.push((await l.take('k', 3_600_000)).allowed);
    expect(after).toEqual([true, true, true, false, false]);
    await l.close();
  });

  it('different keys have separate buckets', async () => {
    const l = await adapter.open({ rps: 1, burst: 2 });
    await l.take('a', 0);
    await l.take('a', 0);
    expect((await l.take('a', 0)).allowed).toBe(false);
    const b = await l.take('b', 0);
    expect(b).toMatchObject({ allowed: true, remaining: 1 });
    expect((await l.take('a', 0)).allowed).toBe(false);
    await l.close();
  });

  it.each([
    { rps: 10, burst: 1 },
    { rps: 7, burst: 1 },
    { rps: 3, burst: 4 },
    { rps: 0.5, burst: 2 },
    { rps: 1000, burst: 1 },
  ])('a client steadily at the rate is always served ($rps/s, burst $burst)', async ({ rps, burst }) => {
    const l = await adapter.open({ rps, burst });
    const interval = 1000 / rps;
    const start = 123.456;
    // Spend the burst first: the client then lives on the refill alone.
    for (let i = 0; i < burst; i++) expect((await l.take('k', start)).allowed).toBe(true);
    for (let i = 1; i <= 5000; i++) {
      const d = await l.take('k', start + i * interval);
      if (!d.allowed) expect.fail(`request ${i} at the rate was refused: ${JSON.stringify(d)}`);
    }
    await l.close();
  });

  it('a client retrying far too often is still served at the full rate (not locked out)', async () => {
    const rps = 5;
    const burst = 3;
    const l = await adapter.open({ rps, burst });
    let served = 0;
    // 100 attempts a second for 60 s.
    for (let t = 0; t <= 60_000; t += 10) if ((await l.take('k', t)).allowed) served++;
    expect(served).toBeLessThanOrEqual(rps * 60 + burst);
    expect(served).toBeGreaterThanOrEqual(rps * 60 + burst - 1);
    await l.close();
  });

  it.each([
    { rps: 10, burst: 10, seed: 1 },
    { rps: 10, burst: 1, seed: 2 },
    { rps: 3, burst: 7, seed: 3 },
    { rps: 0.5, burst: 3, seed: 4 },
    { rps: 250, burst: 20, seed: 5 },
    { rps: 33.3, burst: 34, seed: 6 },
    { rps: 1, burst: 1, seed: 7 },
    { rps: 100, burst: 1, seed: 8 },
  ])(
    'property: in EVERY window [a, b], served ≤ rps·(b − a) + burst — random arrivals ($rps/s, burst $burst, seed $seed)',
    async ({ rps, burst, seed }) => {
      const l = await adapter.open({ rps, burst });
      const rand = seededRandom(seed);
      const times = arrivals(rand, rps, burst, 2500);
      const served: number[] = [];
      let refused = 0;
      for (const t of times) {
        if ((await l.take('k', t)).allowed) served.push(t);
        else refused++;
      }
      // The arrivals must actually push the limiter, or the property says nothing.
      expect(refused).toBeGreaterThan(100);
      expect(served.length).toBeGreaterThan(100);
      const worst = worstExcess(served, rps, burst);
      expect(worst.excess, `worst window ${worst.window}`).toBeLessThanOrEqual(0);
      // And the bound is reached: the limiter is not stingier than the bucket (some window is full).
      expect(worst.excess).toBeGreaterThan(-1);
      await l.close();
    },
  );

  it('property: with no refusals in between, a take is refused only when the bucket is truly empty', async () => {
    // Reference: the same bucket in exact integer arithmetic (time in ms, rate 1 token per 250 ms).
    const rps = 4;
    const burst = 5;
    const l = await adapter.open({ rps, burst });
    const rand = seededRandom(99);
    let tokensTimes250 = burst * 250; // tokens × 250, an integer
    let last = 0;
    let t = 0;
    for (let i = 0; i < 5000; i++) {
      t += Math.floor(rand() * (rand() < 0.5 ? 40 : 600));
      tokensTimes250 = Math.min(burst * 250, tokensTimes250 + (t - last));
      last = t;
      const expected = tokensTimes250 >= 250;
      if (expected) tokensTimes250 -= 250;
      const d = await l.take('k', t);
      if (d.allowed !== expected) expect.fail(`at ${t} ms: expected allowed=${expected}, got ${JSON.stringify(d)}`);
      if (d.allowed) expect(d.remaining).toBe(Math.floor(tokensTimes250 / 250));
    }
    await l.close();
  });
});

/** Where two processes' limiters meet: the shared server, or the cluster. */
const SHARED_BACKENDS: { name: string; url(): Promise<string> }[] = [
  { name: 'redis', url: () => sharedRedisUrl() },
  {
    name: 'redis cluster',
    url: async () => {
      if (!cluster) throw new Error('the test cluster did not start (see beforeAll)');
      return cluster.url;
    },
  },
];

describe.each(SHARED_BACKENDS)('RateLimiter across processes: $name', (backend) => {
  /** Two limiters as two processes would hold them: each its own connection, one key prefix. */
  async function twoProcesses(limit: { rps: number; burst: number }): Promise<[RedisRateLimiter, RedisRateLimiter]> {
    const url = await backend.url();
    const prefix = freshPrefix();
    const open = () =>
      new RedisRateLimiter({ client: connectRedis(url), ...limit, prefix, timeoutMs: 10_000, closeClient: true });
    return [open(), open()];
  }

  it('two limiters on separate connections share each bucket: in every window, together ≤ rps·(b − a) + burst', async () => {
    const rps = 20;
    const burst = 4;
    const limiters = await twoProcesses({ rps, burst });
    const rand = seededRandom(21);
    const served: number[] = [];
    const servedBy: [number, number] = [0, 0];
    let refused = 0;
    for (const t of arrivals(rand, rps, burst, 2000)) {
      const which = rand() < 0.5 ? 0 : 1;
      if ((await limiters[which].take('k', t)).allowed) {
        served.push(t);
        servedBy[which]++;
      } else refused++;
    }
    expect(refused).toBeGreaterThan(100);
    // Both were served (each alone would have allowed the whole rate).
    expect(Math.min(...servedBy)).toBeGreaterThan(100);
    const worst = worstExcess(served, rps, burst);
    expect(worst.excess, `worst window ${worst.window}`).toBeLessThanOrEqual(0);
    expect(worst.excess).toBeGreaterThan(-1);
    for (const l of limiters) expect(l.decidedLocally).toBe(0);
    await Promise.all(limiters.map((l) => l.close()));
  });

  it("on Redis's clock: two processes taking as fast as they can get rps × t + burst together, not each", async () => {
    const rps = 50;
    const burst = 5;
    const limiters = await twoProcesses({ rps, burst });
    let allowed = 0;
    const start = performance.now();
    // Four callers per process for 1.5 s, no `now`: the script reads the server's time.
    await Promise.all(
      limiters.flatMap((l) =>
        Array.from({ length: 4 }, async () => {
          while (performance.now() - start < 1500) if ((await l.take('k')).allowed) allowed++;
        }),
      ),
    );
    const seconds = (performance.now() - start) / 1000;
    // Every decision fell between `start` and now on the server's clock too (within the run).
    expect(allowed).toBeLessThanOrEqual(Math.floor(rps * seconds + burst));
    // And the bucket was used, not starved: one process alone could take this much.
    expect(allowed).toBeGreaterThanOrEqual(Math.floor(rps * 1.5 + burst) - 2);
    for (const l of limiters) expect(l.decidedLocally).toBe(0);
    await Promise.all(limiters.map((l) => l.close()));
  });
});
