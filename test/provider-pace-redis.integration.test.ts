/**
 * A provider's rate limit across worker processes: two routes built as two workers build them (each
 * its own Redis connection, the same provider and `rateLimit`), sending as fast as their slots allow.
 * With the Redis limiter behind their pace, the sends they start together respect the provider's
 * `perSecond × t + burst` in every window; paced in-process, as each worker did before, together
 * they send twice that — the second test shows the harness can tell.
 *
 * The windows are counted on the times the routes start each send (`observe`), in this one process.
 */
import { describe, expect, it } from 'vitest';
import { buildRoutes, type RouteSharing } from '../src/channels/registry.ts';
import type { ProvidersFile } from '../src/config-providers.ts';
import type { ChannelProvider } from '../src/core/ports-channels.ts';
import type { ProviderAttempt } from '../src/core/provider-route.ts';
import type { DeliveryJob } from '../src/core/types.ts';
import { RedisRateLimiter } from '../src/ratelimit/rate-limiter-redis.ts';
import { connectRedis, type RedisClient } from '../src/redis-connection.ts';
import { freshPrefix, sharedRedisUrl } from './support/redis.ts';

const PACE = { perSecond: 100, burst: 10 };
const SLOTS = 16;
const RUN_MS = 2_000;

const job = { deliveryId: 'd', channel: 'webhook', userId: 'u' } as unknown as DeliveryJob;
const receiver: ChannelProvider = { channel: 'webhook', name: 'webhook', send: async () => ({ ok: true }) };
const file: ProvidersFile = {
  path: 'test',
  extra: [],
  tuning: new Map([['webhook', { rateLimit: PACE }]]),
  channels: {},
};

/** One worker: its route to the provider, and the sends it started (ms since the epoch). */
function worker(sharing: RouteSharing, attempts: ProviderAttempt[]) {
  const routes = buildRoutes(
    [{ provider: receiver, breaker: null, timeoutMs: 100 }],
    file,
    { maxWaitMs: 1_000, budgetMs: 1_100, observe: (a) => attempts.push(a) },
    sharing,
  );
  const route = routes.get('webhook');
  if (!route) throw new Error('no webhook route');
  return route;
}

/** Both workers' slots send until the run ends; the start times of every send, sorted. */
async function run(sharing: [RouteSharing, RouteSharing]) {
  const attempts: ProviderAttempt[][] = [[], []];
  const routes = sharing.map((s, i) => worker(s, attempts[i] as ProviderAttempt[]));
  const until = performance.now() + RUN_MS;
  await Promise.all(
    routes.flatMap((route) =>
      Array.from({ length: SLOTS }, async () => {
        while (performance.now() < until) await route.send(job);
      }),
    ),
  );
  const sent = attempts.map((a) => a.filter((x) => x.outcome === 'sent').map((x) => x.startedAt));
  return {
    byWorker: sent.map((s) => s.length),
    started: sent.flat().sort((a, b) => a - b),
    paced: attempts.flat().filter((x) => x.outcome === 'paced').length,
  };
}

/** The largest excess, over every window [a, b] of start times, of sends − (perSecond·(b − a) + burst). */
function worstExcess(sorted: number[]): number {
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < sorted.length; i++)
    for (let j = i; j < sorted.length; j++) {
      const span = (sorted[j] as number) - (sorted[i] as number);
      worst = Math.max(worst, j - i + 1 - (PACE.perSecond * span) / 1000 - PACE.burst);
    }
  return worst;
}

describe("a provider's rate limit with two worker processes", () => {
  it('paced through Redis, the two together start at most perSecond × t + burst sends in every window', async () => {
    const url = await sharedRedisUrl();
    const prefix = freshPrefix();
    const clients: RedisClient[] = [connectRedis(url), connectRedis(url)];
    const limiters: RedisRateLimiter[] = [];
    const shared = (client: RedisClient): RouteSharing => ({
      paceLimiter: (pace) => {
        const l = new RedisRateLimiter({ client, rps: pace.perSecond, burst: pace.burst, prefix });
        limiters.push(l);
        return l;
      },
    });
    const result = await run([shared(clients[0] as RedisClient), shared(clients[1] as RedisClient)]);
    for (const c of clients) c.disconnect();

    console.log(
      `shared pace: ${result.started.length} sends by two workers in ${RUN_MS / 1000} s (${result.byWorker.join(' + ')}), ` +
        `worst window ${worstExcess(result.started).toFixed(2)} over the bound, ${result.paced} passed over`,
    );
    expect(limiters).toHaveLength(2);
    for (const l of limiters) expect(l.decidedLocally).toBe(0);
    // A start time is read just after its token is granted, a little late and not always by the same
    // amount: one send of slack in a window.
    expect(worstExcess(result.started)).toBeLessThanOrEqual(1);
    // Both workers sent, and together close to the provider's rate: the sends waited for tokens
    // instead of being refused.
    expect(Math.min(...result.byWorker)).toBeGreaterThan(40);
    expect(result.started.length).toBeGreaterThan(0.9 * ((PACE.perSecond * RUN_MS) / 1000 + PACE.burst));
    expect(result.paced).toBeLessThan(result.started.length / 10);
  });

  it('paced in each process alone, the two together exceed it (what the shared pace is for)', async () => {
    const result = await run([{}, {}]);
    expect(Math.min(...result.byWorker)).toBeGreaterThan(150);
    expect(worstExcess(result.started)).toBeGreaterThan(PACE.burst);
  });
});
