/**
 * A worker whose bus cannot take a retry (Redis down under the Redis Streams bus): the retry is in
 * the store (pending, due later), the reconciler announces it again, and the process lives on.
 * (A rejected publish of a retry once went unhandled and ended a worker: chaos `redis-restart-streams`.)
 */
import { afterEach, expect, it } from 'vitest';
import { QueueTableBus } from '../src/bus/bus-queue-table.ts';
import { HeraldEmitter } from '../src/core/events.ts';
import type { BusJob } from '../src/core/types.ts';
import { DeliveryWorker } from '../src/core/worker.ts';
import { STORE_ADAPTERS } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** The store's own queue, with a publish that fails like a bus whose Redis is down. */
class UnreachableBus extends QueueTableBus {
  publishes = 0;
  override async publish(_jobs: readonly BusJob[]): Promise<void> {
    this.publishes++;
    throw new Error('Reached the max retries per request limit');
  }
}

it('records a retry when the bus cannot take it, and carries on', async () => {
  const postgres = STORE_ADAPTERS.find((a) => a.kind === 'postgres');
  if (!postgres) throw new Error('no PostgreSQL store adapter');
  const { store, cleanup } = await postgres.open();
  cleanups.push(cleanup);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  cleanups.push(async () => process.off('unhandledRejection', onUnhandled));

  const bus = new UnreachableBus();
  const events = new HeraldEmitter();
  const retried = new Promise<void>((resolve) => events.on('delivery:retry', () => resolve()));
  const worker = new DeliveryWorker(
    store,
    bus,
    { send: async () => ({ ok: false, permanent: false, error: 'HTTP 503' }) },
    events,
    { error() {} },
    {
      laneConcurrency: { critical: 1, high: 1, normal: 1, bulk: 1 },
      leaseMs: 30_000,
      pollMs: 50,
      retry: { baseMs: 60_000, maxAttempts: 5, maxDelayMs: 60_000 },
    },
  );
  await store.accept([newNotification({ to: ['u1'], channels: ['webhook'] })]);
  worker.start();
  cleanups.push(() => worker.stop());
  await retried;
  await new Promise((r) => setTimeout(r, 50));

  expect(bus.publishes).toBeGreaterThanOrEqual(1);
  expect(unhandled).toEqual([]);
  const rows = await store.findOverdue(new Date(Date.now() + 120_000), 10);
  expect(rows.map((r) => r.lane)).toEqual(['normal']);
});
