/**
 * The reconciler with a bus that is not the store (Redis Streams): the store is the source of truth
 * and the reconciler (src/core/maintenance.ts) gives the bus back what it lost — but only that:
 * - overdue pending rows are re-announced when nothing due waits in their lane of the bus (lost),
 *   and not while something does (a backlog: they are most likely in it);
 * - rows coming within the bus's horizon are announced once, as the horizon reaches them;
 * - several schedulers: only the holder of the `reconciler` lease announces anything.
 * Real PostgreSQL and Redis (a fresh key prefix on the shared server).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RedisStreamsBus } from '../src/bus/bus-redis-streams.ts';
import { HeraldEmitter } from '../src/core/events.ts';
import { Maintenance } from '../src/core/maintenance.ts';
import type { Bus } from '../src/core/ports-bus.ts';
import type { Lane } from '../src/core/types.ts';
import { connectRedis, type RedisClient } from '../src/redis-connection.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { STORE_ADAPTERS } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';
import { freshPrefix, sharedRedisUrl } from './support/redis.ts';

const OVERDUE_MS = 1_000;
const HORIZON_MS = 3_000;
const postgres = STORE_ADAPTERS.find((a) => a.kind === 'postgres');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let store: SqlStore;
let client: RedisClient;
let prefix: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  if (!postgres) throw new Error('no PostgreSQL store adapter');
  const opened = await postgres.open();
  store = opened.store;
  cleanups.push(() => opened.cleanup());
  client = connectRedis(await sharedRedisUrl());
  cleanups.push(async () => client.disconnect());
  prefix = freshPrefix();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

function bus(): RedisStreamsBus {
  const b = new RedisStreamsBus(client, { prefix, consumer: `c-${Math.random()}`, horizonMs: HORIZON_MS });
  cleanups.push(() => b.close());
  return b;
}

function maintenance(b: Bus, node: string): Maintenance {
  const log = { error() {}, info() {} };
  return new Maintenance(store, b, new HeraldEmitter(), log, { leaseMs: 30_000, node, overdueMs: OVERDUE_MS });
}

/** Commits `n` webhook deliveries in `lane` (due at `sendAt`, default now) without publishing them: a publisher that died. */
async function commitUnpublished(n: number, lane: Lane = 'normal', sendAt: Date | null = null): Promise<string[]> {
  const out = await store.accept([
    newNotification({
      to: Array.from({ length: n }, (_, i) => `u${i}`),
      priority: lane,
      channels: ['webhook'],
      sendAt,
    }),
  ]);
  return out.flatMap((o) => (o.kind === 'accepted' ? o.jobs.map((j) => j.id) : []));
}

async function claimAll(b: Bus, lane: Lane): Promise<string[]> {
  const from = await b.claim(lane, 10_000);
  return 'ids' in from ? [...from.ids] : [];
}

describe('reconciler with the Redis Streams bus', () => {
  it('re-announces overdue rows the bus lost, and only once while they wait in it', async () => {
    const b = bus();
    const ids = await commitUnpublished(30);
    const m = maintenance(b, 'scheduler-1');
    // Not overdue yet: nothing to re-announce.
    expect((await m.reconcile()).published).toBe(0);
    await sleep(OVERDUE_MS + 200);
    expect((await m.reconcile()).published).toBe(30);
    expect(await b.waiting('normal')).toBe(30);
    // They wait in the bus now: a second run does not add them again.
    expect((await m.reconcile()).published).toBe(0);
    expect((await claimAll(b, 'normal')).sort()).toEqual([...ids].sort());
  });

  it('leaves a lane alone while due work waits in it (a backlog), and still serves the other lanes', async () => {
    const b = bus();
    const backlog = await commitUnpublished(20, 'bulk');
    await b.publish(backlog.slice(0, 5).map((id) => ({ id, lane: 'bulk' as const, runAt: new Date() })));
    const lost = await commitUnpublished(3, 'critical');
    await sleep(OVERDUE_MS + 200);
    const m = maintenance(b, 'scheduler-1');
    // bulk: 5 wait in the bus, so its 15 unpublished overdue rows are not re-announced yet; critical: lost, re-announced.
    expect((await m.reconcile()).published).toBe(3);
    expect((await claimAll(b, 'critical')).sort()).toEqual([...lost].sort());
    expect(await claimAll(b, 'bulk')).toHaveLength(5);
    // Both lanes are drained (nothing waits): every row still pending is re-announced — the 15 never
    // published, and the 5 bulk and 3 critical ones taken from the bus but never started (their taker
    // died, as far as the store knows) — harmless, the store starts each once.
    expect((await m.reconcile()).published).toBe(23);
  });

  it('announces work as it comes within the horizon, once', async () => {
    const b = bus();
    const [later] = await commitUnpublished(1, 'high', new Date(Date.now() + HORIZON_MS + 1_000));
    const m = maintenance(b, 'scheduler-1');
    expect((await m.reconcile()).published).toBe(0);
    await sleep(1_500);
    // Now within the horizon: held by the bus until due.
    expect((await m.reconcile()).published).toBe(1);
    expect((await m.reconcile()).published).toBe(0);
    expect(await claimAll(b, 'high')).toEqual([]);
    await sleep(HORIZON_MS);
    expect(await claimAll(b, 'high')).toEqual([later]);
  });

  it('with several schedulers, only the lease holder announces; another takes over when it stops', async () => {
    const b = bus();
    await commitUnpublished(10);
    await sleep(OVERDUE_MS + 200);
    const first = maintenance(b, 'scheduler-1');
    const second = maintenance(b, 'scheduler-2');
    const runs = await Promise.all([first.reconcile(), second.reconcile(), first.reconcile(), second.reconcile()]);
    expect(runs.reduce((n, r) => n + r.published, 0)).toBe(10);
    expect((await second.reconcile()).published).toBe(0);
    await first.stop();
    await claimAll(b, 'normal');
    // The lease was given back: the second scheduler reconciles now (the 10 are still pending, never started).
    expect((await second.reconcile()).published).toBe(10);
  });
});
