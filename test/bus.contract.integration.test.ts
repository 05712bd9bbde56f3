/**
 * The Bus port's contract, run against every bus adapter: the queue-table bus on each store, and the
 * Redis streams bus over PostgreSQL on the shared Redis server and on a private three-node Redis
 * Cluster. Jobs are created the way the pipeline creates them: committed by the store, then
 * published; and taken the way the worker takes them: `claim` says where to take from, and the
 * store starts what it says (`store.startAttempts(await bus.claim(lane, max), lease)`), so the
 * contract is about what that pair hands out.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { QueueTableBus } from '../src/bus/bus-queue-table.ts';
import { RedisStreamsBus } from '../src/bus/bus-redis-streams.ts';
import { uuidv7 } from '../src/core/ids.ts';
import type { StartedWork } from '../src/core/ports.ts';
import type { Bus } from '../src/core/ports-bus.ts';
import type { BusJob, Channel, Lane, NewNotification } from '../src/core/types.ts';
import { connectRedis, type RedisClient } from '../src/redis-connection.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { type OpenedStore, STORE_ADAPTERS, type StoreAdapter } from './support/databases.ts';
import { freshPrefix, type PrivateCluster, privateCluster, sharedRedisUrl } from './support/redis.ts';

interface BusOptions {
  /** Redis: how long a handed-out id may stay unacked (the worker passes its lease time). */
  visibilityMs?: number;
  /** Redis: the per-lane bound past which `full` turns true. */
  maxLength?: number;
}

interface OpenedBus {
  bus: Bus;
  store: SqlStore;
  /** Another process's bus over the same queue (another consumer). */
  peer(): Bus;
  /** Redis only: loses every key the bus holds, as a FLUSHALL (or a restart without persistence) does. */
  flush?(): Promise<void>;
  cleanup(): Promise<void>;
}

interface BusAdapter {
  name: string;
  /** Holds its own copy of the work (Redis): it can lose it, and it has a length bound. */
  ownCopy: boolean;
  open(options?: BusOptions): Promise<OpenedBus>;
}

const queueTable = STORE_ADAPTERS.map(
  (s): BusAdapter => ({
    name: `queue-table on ${s.kind}`,
    ownCopy: false,
    async open() {
      const opened: OpenedStore = await s.open();
      const buses: Bus[] = [new QueueTableBus()];
      return {
        bus: buses[0] as Bus,
        store: opened.store,
        peer() {
          const b = new QueueTableBus();
          buses.push(b);
          return b;
        },
        async cleanup() {
          for (const b of buses) await b.close();
          await opened.cleanup();
        },
      };
    },
  }),
);

const postgres = STORE_ADAPTERS.find((s) => s.kind === 'postgres') as StoreAdapter;
let cluster: PrivateCluster | null = null;

/** The Redis streams bus over PostgreSQL, on a client `connect` makes; `flushAll` loses its keys. */
function redisStreams(
  name: string,
  connect: () => Promise<RedisClient>,
  flushAll: (client: RedisClient, prefix: string) => Promise<void>,
): BusAdapter {
  return {
    name,
    ownCopy: true,
    async open(options = {}) {
      const client = await connect();
      const opened = await postgres.open();
      const prefix = freshPrefix();
      let n = 0;
      const make = () => new RedisStreamsBus(client, { prefix, consumer: `c${++n}`, ...options });
      const buses: Bus[] = [make()];
      return {
        bus: buses[0] as Bus,
        store: opened.store,
        peer() {
          const b = make();
          buses.push(b);
          return b;
        },
        flush: () => flushAll(client, prefix),
        async cleanup() {
          for (const b of buses) await b.close();
          await deleteKeys(client, prefix).catch(() => {});
          client.disconnect();
          await opened.cleanup();
        },
      };
    },
  };
}

/** Deletes every key under `prefix` (every key is in one lane's slot, so one DEL per key). */
async function deleteKeys(client: RedisClient, prefix: string): Promise<void> {
  const nodes = 'nodes' in client ? client.nodes('master') : [client];
  for (const node of nodes) {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    for (const k of keys) await client.del(k);
  }
}

const BUS_ADAPTERS: BusAdapter[] = [
  ...queueTable,
  // The shared server serves every test file at once: its "FLUSHALL" deletes this test's keys only,
  // which is what the bus sees of a real one (its stream and group gone).
  redisStreams(
    'redis-streams on postgres',
    async () => connectRedis(await sharedRedisUrl()),
    (client, prefix) => deleteKeys(client, prefix),
  ),
  redisStreams(
    'redis-streams on postgres, Redis Cluster',
    async () => {
      if (!cluster) throw new Error('the private cluster did not start (see beforeAll)');
      return connectRedis(cluster.url);
    },
    async (client) => {
      await Promise.all(('nodes' in client ? client.nodes('master') : [client]).map((node) => node.flushall()));
    },
  ),
];

beforeAll(async () => {
  cluster = await privateCluster();
});
afterAll(async () => {
  await cluster?.cleanup();
});

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
  let opened: OpenedBus;
  let bus: Bus;
  let store: SqlStore;
  /** Reopens with other options (the first one is cleaned up). */
  async function reopen(options: BusOptions): Promise<void> {
    await opened.cleanup();
    opened = await adapter.open(options);
    ({ bus, store } = opened);
  }

  beforeEach(async () => {
    opened = await adapter.open();
    ({ bus, store } = opened);
  });
  afterEach(async () => opened.cleanup());

  /** Commits notifications and publishes their deliveries, as ingest does. */
  async function enqueue(...ns: NewNotification[]): Promise<BusJob[]> {
    const out = await store.accept(ns);
    const jobs = out.flatMap((o) => (o.kind === 'accepted' ? o.jobs : []));
    await bus.publish(jobs);
    return jobs;
  }

  /** What the worker does: asks the bus where to take from, and has the store start that. */
  async function take(lane: Lane, max: number, leaseMs = LEASE, from: Bus = bus): Promise<StartedWork> {
    return store.startAttempts(await from.claim(lane, max), leaseMs);
  }

  /**
   * A take the way the worker does it (src/core/worker.ts, runLane and handBack): ids it did not
   * lease that the store still has pending are published again — due then, or `HAND_BACK_MS` from
   * now if already due (the worker waits a second; shorter here to keep the test quick) — and
   * every id is acked. Returns the leased jobs.
   */
  async function workerTake(lane: Lane, max: number, from: Bus = bus): Promise<string[]> {
    const HAND_BACK_MS = 200;
    const claimed = await from.claim(lane, max);
    const work = await store.startAttempts(claimed, LEASE);
    const leased = work.jobs.map((j) => j.deliveryId);
    if ('ids' in claimed) {
      const others = claimed.ids.filter((id) => !leased.includes(id));
      const pending = await store.stillPending(others);
      const soon = Date.now() + HAND_BACK_MS;
      if (pending.length)
        await from.publish(pending.map((j) => (j.runAt.getTime() < soon ? { ...j, runAt: new Date(soon) } : j)));
      await from.ack(lane, others);
      await from.ack(lane, leased);
    }
    return leased;
  }

  /** Takes (as the worker does) until `until` has passed, or until it has `enough` ids; every id leased, in order. */
  async function takeUntil(lane: Lane, until: number, enough = Number.POSITIVE_INFINITY): Promise<string[]> {
    const out: string[] = [];
    while (Date.now() < until && out.length < enough) {
      out.push(...(await workerTake(lane, 100)));
      await new Promise((r) => setTimeout(r, 25));
    }
    return out;
  }

  /**
   * Takes (as the worker does) until `until`, or until `enough` ids; what each take leased, with
   * when it finished — a take that finished before a job's due time must not have it, whatever the
   * machine's load made of the schedule.
   */
  async function takesUntil(lane: Lane, until: number, enough: number): Promise<{ ids: string[]; at: number }[]> {
    const out: { ids: string[]; at: number }[] = [];
    let n = 0;
    while (Date.now() < until && n < enough) {
      const ids = await workerTake(lane, 100);
      out.push({ ids, at: Date.now() });
      n += ids.length;
      await new Promise((r) => setTimeout(r, 25));
    }
    return out;
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
  it('hands a job out again after the visibility timeout when its taker never acked it', async () => {
    // The worker passes its lease time as the visibility timeout: one short lease is both here.
    await reopen({ visibilityMs: 300 });
    const other = opened.peer();
    const [job] = await enqueue(notification('normal', 1));
    const first = await take('normal', 10, 300);
    expect(taken(first)).toEqual([job?.id]);
    // Its taker dies without acking. Not handed out while it is still leased.
    expect(taken(await take('normal', 10, LEASE, other))).toEqual([]);
    await new Promise((r) => setTimeout(r, 400));
    // The scheduler's reclaim makes the row pending again. What reclaimExpired returns is not
    // published here (the scheduler would): the bus itself must hand the id out again.
    expect(await store.reclaimExpired(100)).toEqual([{ id: job?.id, lane: 'normal' }]);
    const again = await take('normal', 10, LEASE, other);
    expect(taken(again)).toEqual([job?.id]);
    expect(again.jobs[0]).toMatchObject({ attempt: 2 });
  });

  it('hands back an id handed out before it was due, and hands it out once it is due', async () => {
    const due = Date.now() + 400;
    const [job] = await enqueue(notification('high', 1, new Date(due)));
    // Announced early (a clock ahead, a reconciler publishing within the horizon): handed out now.
    await bus.publish([{ id: job?.id as string, lane: 'high', runAt: new Date() }]);
    const takes = await takesUntil('high', due + 1_500, 1);
    expect(takes.filter((t) => t.at < due).flatMap((t) => t.ids)).toEqual([]);
    expect(takes.flatMap((t) => t.ids)).toEqual([job?.id]);
    expect(await workerTake('high', 10)).toEqual([]);
    expect(await bus.waiting('high')).toBe(0);
  });

  if (adapter.name.includes('postgres'))
    // A row lock held by a concurrent take needs a second connection: the embedded store has one.
    it('hands back an id whose row a concurrent take held, and hands it out after', async () => {
      const [job] = await enqueue(notification('normal', 1));
      let release = () => {};
      let locked = () => {};
      const holding = new Promise<void>((r) => {
        locked = r;
      });
      const tx = store.sql.transaction(async (c) => {
        await c.query('SELECT id FROM deliveries WHERE id = $1 FOR UPDATE', [job?.id]);
        locked();
        await new Promise<void>((r) => {
          release = r;
        });
      });
      await holding;
      expect(await workerTake('normal', 10)).toEqual([]);
      release();
      await tx;
      expect(await takeUntil('normal', Date.now() + 1_500, 1)).toEqual([job?.id]);
      expect(await workerTake('normal', 10)).toEqual([]);
    });

  it('does not hand out a job due in 300 ms before then, and does after', async () => {
    const due = Date.now() + 300;
    const [job] = await enqueue(notification('critical', 1, new Date(due)));
    const takes = await takesUntil('critical', due + 1_500, 1);
    expect(takes.filter((t) => t.at < due).length).toBeGreaterThan(0); // it was asked before
    expect(takes.filter((t) => t.at < due).flatMap((t) => t.ids)).toEqual([]);
    expect(takes.flatMap((t) => t.ids)).toEqual([job?.id]);
    expect(await workerTake('critical', 10)).toEqual([]);
  });

  it('counts due jobs nobody was handed as waiting, and none once they are claimed', async () => {
    await enqueue(notification('normal', 3), notification('normal', 2, new Date(Date.now() + 60_000)));
    // The store's own queue has nothing waiting in the bus: due rows are taken straight from it.
    expect(await bus.waiting('normal')).toBe(bus.queueIsStore ? 0 : 3);
    expect(await bus.waiting('bulk')).toBe(0);
    const first = await take('normal', 2);
    expect(taken(first)).toHaveLength(2);
    expect(await bus.waiting('normal')).toBe(bus.queueIsStore ? 0 : 1);
    expect(taken(await take('normal', 10))).toHaveLength(1);
    expect(await bus.waiting('normal')).toBe(0);
  });

  it('starts a job published twice once', async () => {
    const jobs = await enqueue(notification('normal', 3));
    await bus.publish(jobs);
    const other = opened.peer();
    const [a, b] = await Promise.all([workerTake('normal', 10), workerTake('normal', 10, other)]);
    const more = [...(await workerTake('normal', 10)), ...(await workerTake('normal', 10, other))];
    expect([...a, ...b, ...more].sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(await bus.waiting('normal')).toBe(0);
    expect(taken(await take('normal', 10))).toEqual([]);
  });

  if (adapter.ownCopy) {
    it('keeps working after Redis lost everything, and hands out what is published again', async () => {
      await enqueue(notification('normal', 1));
      expect(await workerTake('normal', 10)).toHaveLength(1); // the group exists now
      const jobs = await enqueue(notification('normal', 5));
      const waiting = bus.waitForWork('high', 200);
      await opened.flush?.();
      await waiting;
      expect(await bus.waiting('normal')).toBe(0);
      expect(taken(await take('normal', 10))).toEqual([]); // NOGROUP: the group is made again
      // What the reconciler does: the store's overdue rows are published again.
      const overdue = await store.findOverdue(new Date(Date.now() + 1_000), 100, { lane: 'normal' });
      expect(overdue.map((o) => o.id).sort()).toEqual(jobs.map((j) => j.id).sort());
      await bus.publish(overdue);
      expect(await bus.waiting('normal')).toBe(5);
      expect(taken(await take('normal', 10)).sort()).toEqual(jobs.map((j) => j.id).sort());
    });

    it('turns full past its bound without refusing a job, and not full once drained', async () => {
      await reopen({ maxLength: 5 });
      const jobs = await enqueue(notification('bulk', 4));
      expect(bus.full).toBe(false);
      jobs.push(...(await enqueue(notification('bulk', 4))));
      expect(bus.full).toBe(true);
      expect(await bus.waiting('bulk')).toBe(8);
      const got: string[] = [];
      for (let i = 0; i < 3 && got.length < 8; i++) got.push(...(await workerTake('bulk', 3)));
      expect(got.sort()).toEqual(jobs.map((j) => j.id).sort());
      expect(bus.full).toBe(false);
    });
  }
});
