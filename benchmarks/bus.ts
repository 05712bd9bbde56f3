/**
 * bus: deliveries per second through the bus and the store alone — no Herald process, no HTTP, no
 * provider — for the queue-table bus and the Redis streams bus (on the shared Redis at
 * BENCH_REDIS_URL, default redis://127.0.0.1:6379, under a fresh key prefix).
 *
 * `--deliveries` webhook deliveries (default 10,000: notifications of 100 recipients) are committed
 * with `store.accept` and their jobs published (`publish jobs/s`: the publish alone). Then `takers`
 * loops run at once until every delivery is recorded `sent`, each as one worker process's lane
 * loop does it: claim up to 256 → store.startAttempts → store.finishAttempts (all `sent`) → ack.
 * Each taker has its own store pool (16 connections, Herald's default) and its own bus (its own
 * Redis connection and consumer), as a process of its own would; they share this process's CPU.
 *
 * Checked: every delivery ends `sent` and none was started twice (attempts = 1); a run that does
 * not hold fails.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { QueueTableBus } from '../src/bus/bus-queue-table.ts';
import { RedisStreamsBus } from '../src/bus/bus-redis-streams.ts';
import { uuidv7 } from '../src/core/ids.ts';
import type { Bus } from '../src/core/ports-bus.ts';
import type { BusJob, NewNotification } from '../src/core/types.ts';
import { connectRedis, type RedisClient } from '../src/redis-connection.ts';
import { openEmbeddedStore, openPostgresStore, type SqlStore } from '../src/store/store-sql.ts';
import type { StoreKind } from './lib/herald-process.ts';
import { freshDatabase } from './lib/postgres.ts';
import type { Scenario } from './lib/scenario.ts';

const RECIPIENTS = 100;
const BATCH = 256;
const LEASE_MS = 60_000;
const POOL = 16;
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const BUSES = ['queue-table', 'redis-streams'] as const;
const TAKERS = [1, 2] as const;

interface Opened {
  store: SqlStore;
  /** Another store on the same database (another process's pool); the embedded store has only itself. */
  another(): Promise<SqlStore>;
  close(): Promise<void>;
}

async function openStore(kind: StoreKind): Promise<Opened> {
  if (kind === 'pglite') {
    const store = await openEmbeddedStore(null);
    return { store, another: async () => store, close: () => store.close() };
  }
  const db = await freshDatabase();
  const stores: SqlStore[] = [];
  const open = async () => {
    const s = await openPostgresStore(db.url, POOL);
    stores.push(s);
    return s;
  };
  const store = await open();
  return {
    store,
    another: open,
    async close() {
      for (const s of stores) await s.close();
      await db.drop();
    },
  };
}

function notification(): NewNotification {
  return {
    id: uuidv7(),
    to: Array.from({ length: RECIPIENTS }, (_, i) => `user-${i}`),
    category: 'bench.bus',
    priority: 'normal',
    channels: ['webhook'],
    title: 't',
    body: null,
    data: null,
    sendAt: null,
    groupKey: null,
    createdAt: new Date(),
    idempotencyKey: null,
    requestHash: null,
  };
}

/** Deletes the keys under `prefix` on the shared server. */
async function deleteKeys(client: RedisClient, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await client.del(...keys);
  } while (cursor !== '0');
}

async function oneRun(
  kind: StoreKind,
  busKind: (typeof BUSES)[number],
  takers: number,
  deliveries: number,
  log: (m: string) => void,
) {
  const opened = await openStore(kind);
  const prefix = `bench${randomBytes(4).toString('hex')}:`;
  const clients: RedisClient[] = [];
  const buses: Bus[] = [];
  const makeBus = (): Bus => {
    let b: Bus;
    if (busKind === 'queue-table') b = new QueueTableBus();
    else {
      const client = connectRedis(REDIS_URL);
      clients.push(client);
      b = new RedisStreamsBus(client, { prefix, visibilityMs: LEASE_MS });
    }
    buses.push(b);
    return b;
  };
  try {
    const jobs: BusJob[] = [];
    for (let i = 0; i < Math.ceil(deliveries / RECIPIENTS); i += 20) {
      const batch = Array.from({ length: Math.min(20, Math.ceil(deliveries / RECIPIENTS) - i) }, notification);
      for (const o of await opened.store.accept(batch)) if (o.kind === 'accepted') jobs.push(...o.jobs);
    }
    const publisher = makeBus();
    const p0 = performance.now();
    for (let i = 0; i < jobs.length; i += 1000) await publisher.publish(jobs.slice(i, i + 1000));
    const publishS = (performance.now() - p0) / 1000;

    const lanes = await Promise.all(
      Array.from({ length: takers }, async (_, i) => ({
        bus: i === 0 && busKind === 'queue-table' ? publisher : makeBus(),
        store: i === 0 ? opened.store : await opened.another(),
      })),
    );
    let finished = 0;
    let claims = 0;
    const t0 = performance.now();
    await Promise.all(
      lanes.map(async ({ bus, store }) => {
        while (finished < jobs.length) {
          const from = await bus.claim('normal', BATCH);
          claims++;
          const { jobs: leased } = await store.startAttempts(from, LEASE_MS);
          if (leased.length) {
            const ok = await store.finishAttempts(
              leased.map((j) => ({ deliveryId: j.deliveryId, leaseToken: j.leaseToken, result: 'sent', detail: null })),
            );
            finished += ok.filter(Boolean).length;
          }
          if ('ids' in from) await bus.ack('normal', from.ids);
          if (!leased.length && finished < jobs.length) await bus.waitForWork('normal', 20);
        }
      }),
    );
    const takeS = (performance.now() - t0) / 1000;
    const [check] = await opened.store.sql.query<{ sent: number; twice: number }>(
      `SELECT count(*) FILTER (WHERE state = 'sent')::int AS sent, count(*) FILTER (WHERE attempts > 1)::int AS twice
         FROM deliveries`,
    );
    if (check?.sent !== jobs.length || check.twice !== 0)
      throw new Error(`bus ${busKind}: ${check?.sent} of ${jobs.length} sent, ${check?.twice} started twice`);
    const row = {
      variant: `${busKind} ×${takers}`,
      deliveries: jobs.length,
      publishRate: busKind === 'queue-table' ? null : jobs.length / publishS,
      rate: jobs.length / takeS,
      seconds: takeS,
      claims,
    };
    log(`${row.variant}: ${Math.round(row.rate)} deliveries/s`);
    return row;
  } finally {
    for (const b of buses) await b.close();
    if (clients[0]) await deleteKeys(clients[0], prefix).catch(() => {});
    for (const c of clients) c.disconnect();
    await opened.close();
  }
}

export const scenario: Scenario = {
  name: 'bus',
  summary: 'deliveries/s through bus + store only: queue-table vs redis-streams, 1 and 2 takers',
  headline: 'rate',
  columns: [
    { key: 'deliveries', label: 'deliveries' },
    { key: 'publishRate', label: 'publish jobs/s' },
    { key: 'rate', label: 'deliveries/s', better: 'higher' },
    { key: 'seconds', label: 'take s', digits: 2 },
    { key: 'claims', label: 'claims' },
  ],
  async trial(store, options, log) {
    const rows = [];
    for (const takers of TAKERS)
      for (const busKind of BUSES) rows.push(await oneRun(store, busKind, takers, options.deliveries, log));
    return { rows };
  },
};
