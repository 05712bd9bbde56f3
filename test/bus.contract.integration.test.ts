/**
 * The Bus port's contract, run against every bus adapter (today the queue-table bus, on each
 * store). Jobs are created the way the pipeline creates them: committed by the store, then
 * published.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QueueTableBus } from '../src/bus/bus-queue-table.ts';
import { uuidv7 } from '../src/core/ids.ts';
import type { Bus } from '../src/core/ports.ts';
import type { BusJob, Lane, NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { type OpenedStore, STORE_ADAPTERS } from './support/databases.ts';

interface BusAdapter {
  name: string;
  open(): Promise<{ bus: Bus; store: SqlStore; cleanup(): Promise<void> }>;
}

const BUS_ADAPTERS: BusAdapter[] = STORE_ADAPTERS.map((s) => ({
  name: `queue-table on ${s.kind}`,
  async open() {
    const opened: OpenedStore = await s.open();
    const bus = new QueueTableBus(opened.store.sql);
    return {
      bus,
      store: opened.store,
      async cleanup() {
        await bus.close();
        await opened.cleanup();
      },
    };
  },
}));

function notification(lane: Lane, recipients: number, sendAt: Date | null = null): NewNotification {
  return {
    id: uuidv7(),
    to: Array.from({ length: recipients }, (_, i) => `user-${i}`),
    category: 'contract.test',
    priority: lane,
    channels: ['in_app'],
    title: 't',
    body: null,
    data: null,
    sendAt,
    groupKey: null,
    createdAt: new Date(),
    idempotencyKey: null,
    requestHash: null,
  };
}

describe.each(BUS_ADAPTERS)('Bus contract: $name', (adapter) => {
  let bus: Bus;
  let store: SqlStore;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ bus, store, cleanup } = await adapter.open());
  });
  afterEach(async () => cleanup());

  /** Commits notifications and publishes their deliveries, as ingest does. */
  async function enqueue(...ns: NewNotification[]): Promise<BusJob[]> {
    const out = await store.accept(ns);
    const jobs = out.flatMap((o) => (o.kind === 'accepted' ? o.jobs : []));
    await bus.publish(jobs);
    return jobs;
  }

  it('hands out published jobs of a lane, at most `max` at a time, and only that lane', async () => {
    const jobs = await enqueue(notification('normal', 5));
    expect(await bus.claim('critical', 10)).toEqual([]);
    const first = await bus.claim('normal', 3);
    expect(first).toHaveLength(3);
    expect(new Set(first).size).toBe(3);
    expect(jobs.map((j) => j.id)).toEqual(expect.arrayContaining(first));
  });

  it('keeps lanes independent: a deep bulk lane does not delay a critical claim', async () => {
    await enqueue(notification('bulk', 2000));
    const [critical] = await enqueue(notification('critical', 1));
    expect(await bus.claim('critical', 10)).toEqual([critical?.id]);
    expect(await bus.claim('bulk', 5000)).toHaveLength(2000);
  });

  it('does not hand out a job before its runAt', async () => {
    await enqueue(notification('high', 1, new Date(Date.now() + 60_000)));
    expect(await bus.claim('high', 10)).toEqual([]);
  });

  it('hands out a claimed job again until the store leases it (at-least-once), then not while leased', async () => {
    const [job] = await enqueue(notification('normal', 1));
    expect(await bus.claim('normal', 10)).toEqual([job?.id]);
    expect(await bus.claim('normal', 10)).toEqual([job?.id]);
    const [leased] = await store.startAttempts([job?.id as string], 60_000);
    expect(leased?.deliveryId).toBe(job?.id);
    await bus.ack('normal', [job?.id as string]);
    expect(await bus.claim('normal', 10)).toEqual([]);
  });

  it('hands out a job again after its lease expired and was reclaimed', async () => {
    const [job] = await enqueue(notification('normal', 1));
    await store.startAttempts([job?.id as string], 1);
    await new Promise((r) => setTimeout(r, 20));
    const back = await store.reclaimExpired(100);
    await bus.publish(back.map((b) => ({ ...b, runAt: new Date() })));
    expect(await bus.claim('normal', 10)).toEqual([job?.id]);
  });

  it('wakes a waiting consumer when work is published, and times out otherwise', async () => {
    let t0 = Date.now();
    await bus.waitForWork('critical', 150);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);

    t0 = Date.now();
    const waiting = bus.waitForWork('critical', 10_000);
    await enqueue(notification('critical', 1));
    await waiting;
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('wakes a waiting consumer when a future job falls due', async () => {
    const t0 = Date.now();
    const waiting = bus.waitForWork('high', 10_000);
    await enqueue(notification('high', 1, new Date(Date.now() + 300)));
    await waiting;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await bus.claim('high', 10)).toHaveLength(1);
  });

  it('releases waiting consumers on close', async () => {
    const waiting = bus.waitForWork('bulk', 60_000);
    await bus.close();
    await waiting;
    expect(await bus.claim('bulk', 10)).toEqual([]);
  });
});
