/**
 * The queue-table bus in the distributed mode: an idle worker in another process is woken through
 * Redis as soon as work is published (not at its next poll), a wake-up names its lane only, and
 * losing wake-ups (Redis down) loses nothing but time: the poll still comes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { QueueTableBus } from '../src/bus/bus-queue-table.ts';
import { RedisWakeups } from '../src/bus/bus-wake-redis.ts';
import { connectRedis } from '../src/redis-connection.ts';
import { freshPrefix, privateRedis, sharedRedisUrl } from './support/redis.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function processes(url: string, prefix = freshPrefix()): Promise<[QueueTableBus, QueueTableBus]> {
  const make = async () => {
    const client = connectRedis(url);
    client.on('error', () => {});
    const bus = new QueueTableBus(new RedisWakeups(client, { prefix }));
    await bus.start();
    cleanups.push(async () => {
      await bus.close();
      client.disconnect();
    });
    return bus;
  };
  return [await make(), await make()];
}

/** How long `bus.waitForWork(lane)` took to return, with a poll of 10 s. */
async function timeWait(bus: QueueTableBus, lane: 'critical' | 'bulk', during: () => Promise<void>): Promise<number> {
  const started = performance.now();
  const waited = bus.waitForWork(lane, 10_000).then(() => performance.now() - started);
  await during();
  return waited;
}

describe('queue-table bus wake-ups through Redis', () => {
  it("wakes an idle worker in another process at once, and only that lane's", async () => {
    const [api, worker] = await processes(await sharedRedisUrl());
    const bulkWait = worker.waitForWork('bulk', 1_000).then(() => 'woken');
    const ms = await timeWait(worker, 'critical', () =>
      api.publish([{ id: 'x', lane: 'critical', runAt: new Date() }]),
    );
    expect(ms).toBeLessThan(1_000);
    // The bulk lane waited for its own timeout: nothing was published there.
    const started = performance.now();
    await bulkWait;
    expect(performance.now() - started).toBeGreaterThan(200);
  });

  it('without Redis, a worker waits for its poll instead; wake-ups resume when Redis is back', async () => {
    const redis = await privateRedis();
    cleanups.push(() => redis.cleanup());
    const [api, worker] = await processes(redis.url);
    await redis.stop();
    // Publishing does not fail (wake-ups are lossy) and the other process's wait runs to its poll.
    const started = performance.now();
    const waited = worker.waitForWork('critical', 500).then(() => performance.now() - started);
    await api.publish([{ id: 'x', lane: 'critical', runAt: new Date() }]);
    expect(await waited).toBeGreaterThanOrEqual(450);
    await redis.start();
    // ioredis reconnects (retries at most a second apart) and subscribes again by itself.
    let woken = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 40 && woken >= 300; i++) {
      woken = await Promise.race([
        timeWait(worker, 'critical', () => api.publish([{ id: 'y', lane: 'critical', runAt: new Date() }])),
        new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 500)),
      ]);
    }
    expect(woken).toBeLessThan(300);
  }, 60_000);
});
