/**
 * The Bus port's contract, run against every bus adapter (today the queue-table bus, on each
 * store). Jobs are created the way the pipeline creates them: committed by the store, then
 * published; and taken the way the worker takes them: `claim` says where to take from, and the
 * store starts what it says (`store.startAttempts(await bus.claim(lane, max), lease)`), so the
 * contract is about what that pair hands out.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QueueTableBus } from '../src/bus/bus-queue-table.ts';
import { uuidv7 } from '../src/core/ids.ts';
import type { Bus, StartedWork } from '../src/core/ports.ts';
import type { BusJob, Channel, Lane, NewNotification } from '../src/core/types.ts';
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
    const bus = new QueueTableBus();
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

const LEASE = 60_000;

/** A notification to `recipients` users on one channel: `webhook` (leased when taken) unless told. */
function notification(
  lane: Lane,
  recipients: number,
  sendAt: Date | null = null,
  channel: Channel = 'webhook',
): NewNotification {
  return {
    id: uuidv7(),
    to: Array.from({ length: recipients }, (_, i) => `user-${i}`),
    category: 'contract.test',
    priority: lane,
    channels: [channel],
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

  /** What the worker does: asks the bus where to take from, and has the store start that. */
  async function take(lane: Lane, max: number, leaseMs = LEASE): Promise<StartedWork> {
    return store.startAttempts(await bus.claim(lane, max), leaseMs);
  }

  /** The ids a take started, leased or delivered in-app. */
  function taken(work: StartedWork): string[] {
    return [...work.jobs.map((j) => j.deliveryId), ...work.inbox.map((e) => e.deliveryId)];
  }

  it('hands out published jobs of a lane, at most `max` at a time, and only that lane', async () => {
    const jobs = await enqueue(notification('normal', 5));
    expect(taken(await take('critical', 10))).toEqual([]);
    const first = await take('normal', 3);
    expect(first.inbox).toEqual([]);
    expect(first.jobs).toHaveLength(3);
    for (const j of first.jobs) expect(j).toMatchObject({ lane: 'normal', channel: 'webhook', attempt: 1 });
    const ids = taken(first);
    expect(new Set(ids).size).toBe(3);
    expect(jobs.map((j) => j.id)).toEqual(expect.arrayContaining(ids));

    const rest = taken(await take('normal', 10));
    expect([...ids, ...rest].sort()).toEqual(jobs.map((j) => j.id).sort());
  });

  it('hands out in-app jobs the same way, delivered as they are taken', async () => {
    const jobs = await enqueue(notification('high', 3, null, 'in_app'));
    expect(taken(await take('normal', 10))).toEqual([]);
    const first = await take('high', 2);
    expect(first.jobs).toEqual([]);
    expect(first.inbox).toHaveLength(2);
    for (const e of first.inbox) expect(e).toMatchObject({ lane: 'high', attempt: 1, item: { seq: 1 } });
    const rest = await take('high', 10);
    expect([...taken(first), ...taken(rest)].sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(taken(await take('high', 10))).toEqual([]);
  });

  it('keeps lanes independent: a deep bulk lane does not delay a critical take', async () => {
    await enqueue(notification('bulk', 2000));
    const [critical] = await enqueue(notification('critical', 1));
    expect(taken(await take('critical', 10))).toEqual([critical?.id]);
    const bulk = await take('bulk', 5000);
    expect(bulk.jobs).toHaveLength(2000);
    for (const j of bulk.jobs) expect(j.lane).toBe('bulk');
  });

  it('does not hand out a job before its runAt', async () => {
    const [later] = await enqueue(notification('high', 1, new Date(Date.now() + 60_000)));
    const [inAppLater] = await enqueue(notification('high', 1, new Date(Date.now() + 60_000), 'in_app'));
    expect(taken(await take('high', 10))).toEqual([]);
    expect(await store.findOverdue(new Date(Date.now() + 120_000), 10)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: later?.id }),
        expect.objectContaining({ id: inAppLater?.id }),
      ]),
    );
  });

  it('hands a job out once: not again while it is leased', async () => {
    const [job] = await enqueue(notification('normal', 1));
    const first = await take('normal', 10);
    expect(taken(first)).toEqual([job?.id]);
    expect(first.jobs[0]?.leaseToken).toEqual(expect.any(String));
    await bus.ack('normal', [job?.id as string]);
    expect(taken(await take('normal', 10))).toEqual([]);
  });

  it('hands out a job only once to concurrent takers', async () => {
    const jobs = await enqueue(notification('normal', 20));
    const takes = await Promise.all([1, 2, 3, 4].map(() => take('normal', 20)));
    const ids = takes.flatMap(taken);
    expect(ids.sort()).toEqual(jobs.map((j) => j.id).sort());
  });

  it('hands out a job again after its lease expired and was reclaimed', async () => {
    const [job] = await enqueue(notification('normal', 1));
    const first = await take('normal', 10, 1);
    expect(taken(first)).toEqual([job?.id]);
    await new Promise((r) => setTimeout(r, 20));
    const back = await store.reclaimExpired(100);
    expect(back).toEqual([{ id: job?.id, lane: 'normal' }]);
    await bus.publish(back.map((b) => ({ ...b, runAt: new Date() })));
    const again = await take('normal', 10);
    expect(taken(again)).toEqual([job?.id]);
    expect(again.jobs[0]).toMatchObject({ attempt: 2 });
    expect(again.jobs[0]?.leaseToken).not.toBe(first.jobs[0]?.leaseToken);
  });

  it('wakes a waiting consumer when work is published, and times out otherwise', async () => {
    let t0 = Date.now();
    await bus.waitForWork('critical', 150);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);

    t0 = Date.now();
    const waiting = bus.waitForWork('critical', 10_000);
    const [job] = await enqueue(notification('critical', 1));
    await waiting;
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(taken(await take('critical', 10))).toEqual([job?.id]);
  });

  it('wakes a waiting consumer when a future job falls due', async () => {
    const t0 = Date.now();
    const waiting = bus.waitForWork('high', 10_000);
    const [job] = await enqueue(notification('high', 1, new Date(Date.now() + 300)));
    await waiting;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(taken(await take('high', 10))).toEqual([job?.id]);
  });

  it('releases waiting consumers on close, and hands out nothing after', async () => {
    await enqueue(notification('bulk', 3), notification('bulk', 2, null, 'in_app'));
    const waiting = bus.waitForWork('bulk', 60_000);
    const t0 = Date.now();
    await bus.close();
    await waiting;
    expect(Date.now() - t0).toBeLessThan(5_000);
    // Told to take nothing: no ids, or none of the lane.
    const from = await bus.claim('bulk', 10);
    expect('ids' in from ? from.ids.length : from.max).toBe(0);
    expect(taken(await take('bulk', 10))).toEqual([]);
    const [left] = await store.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM deliveries WHERE lane = 'bulk' AND state = 'pending'",
    );
    expect(left?.n).toBe(5);
  });
});
