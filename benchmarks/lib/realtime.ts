/**
 * Shared by the real-time scenarios (ws-storm, reconnect-chaos, e2e-latency): their command-line
 * options, Herald started with the gateway role and a known HERALD_JWT_SECRET, and Herald's memory.
 */
import { readFile } from 'node:fs/promises';
import type { HeraldClient } from './api-client.ts';
import { BENCH_API_KEY, type HeraldProcess, type StoreKind, startHeraldProcess } from './herald-process.ts';
import { connectInspector, freeLocalPort, type Inspector, inspectorEnv } from './inspector.ts';
import { type PaceResult, paced } from './pace.ts';
import type { Column } from './report.ts';
import type { BenchOptions } from './scenario.ts';
import { median, sleep } from './stats.ts';
import { BENCH_JWT_SECRET } from './user-token.ts';
import type { Fleet } from './ws-fleet.ts';
import { monotonicMs } from './ws-fleet-protocol.ts';

/** Options only the real-time scenarios take (parseArgs definitions, for run.ts). */
export const REALTIME_FLAGS = {
  'connect-concurrency': { type: 'string' },
  fanout: { type: 'string' },
  reconnects: { type: 'string' },
  ack: { type: 'boolean', default: false },
} as const;

export const REALTIME_USAGE = `  --users n                      ws-storm: sockets (default 10000); reconnect-chaos: clients (1000);
                                 e2e-latency: connected users (200)
  --count n                      reconnect-chaos: in-app notifications in all (default 20000)
  --rate n                       reconnect-chaos: notifications/s (default 1000); e2e-latency: POSTs/s (default 1000)
  --duration s, --warmup s       e2e-latency: measured and warm-up seconds (default 20 and 2)
  --connect-concurrency n        real-time scenarios: WebSocket connects in flight (default 200)
  --fanout n                     reconnect-chaos: recipients per POST (default 10)
  --reconnects n                 reconnect-chaos: drops per client during the run (default 3)
  --ack                          real-time scenarios: clients ack every notification`;

/** Real-time settings; undefined where the flag was not given (each scenario has its own default). */
export interface RealtimeOptions {
  users: number | undefined;
  count: number | undefined;
  rate: number | undefined;
  duration: number | undefined;
  warmup: number | undefined;
  connectConcurrency: number;
  fanout: number | undefined;
  reconnects: number;
  ack: boolean;
}

type RawValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/**
 * From run.ts's parsed flags; spread into its options (`...realtimeOptions(values, usage)`), read
 * back by the scenarios with realtimeOf().
 */
export function realtimeOptions(values: RawValues, usage: (message: string) => never): { realtime: RealtimeOptions } {
  const num = (name: string, integer = true): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      usage(`--${name} must be a positive ${integer ? 'integer' : 'number'}, not ${JSON.stringify(raw)}`);
    }
    return n;
  };
  return {
    realtime: {
      users: num('users'),
      count: num('count'),
      rate: num('rate', false),
      duration: num('duration', false),
      warmup: num('warmup', false),
      connectConcurrency: num('connect-concurrency') ?? 200,
      fanout: num('fanout'),
      reconnects: num('reconnects') ?? 3,
      ack: values.ack === true,
    },
  };
}

export function realtimeOf(o: BenchOptions): RealtimeOptions {
  const r = (o as BenchOptions & { realtime?: RealtimeOptions }).realtime;
  return (
    r ?? {
      users: undefined,
      count: undefined,
      rate: undefined,
      duration: undefined,
      warmup: undefined,
      connectConcurrency: 200,
      fanout: undefined,
      reconnects: 3,
      ack: false,
    }
  );
}

/** Herald with every role including the WebSocket gateway, whose user tokens the clients can sign. */
export function startRealtimeHerald(store: StoreKind, o: BenchOptions): Promise<HeraldProcess> {
  return startHeraldProcess({
    store,
    roles: 'api,gateway,worker,scheduler',
    env: { ...o.env, HERALD_JWT_SECRET: BENCH_JWT_SECRET },
    ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
  });
}

/** The same, with the V8 inspector on (for forced garbage collections and heap snapshots). */
export async function startInspectedHerald(
  store: StoreKind,
  o: BenchOptions,
): Promise<{ herald: HeraldProcess; inspector: Inspector }> {
  const port = await freeLocalPort();
  const herald = await startRealtimeHerald(store, { ...o, env: inspectorEnv(port, o.env) });
  try {
    return { herald, inspector: await connectInspector(port) };
  } catch (e) {
    await herald.cleanup();
    throw e;
  }
}

export interface HeraldMemory {
  /** VmRSS from /proc/<pid>/status, bytes. */
  rss: number;
  /** V8 heap in use (herald_process_nodejs_heap_size_used_bytes), bytes. */
  heapUsed: number;
  /** Memory outside the V8 heap held by JS objects: Buffers, PGlite's WASM memory (…_external_memory_bytes). */
  external: number;
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

function scrape(herald: HeraldProcess): Promise<string> {
  return fetch(`${herald.url}/metrics`, { headers: { authorization: `Bearer ${BENCH_API_KEY}` } }).then((r) =>
    r.text(),
  );
}

/** prom-client samples the event loop with a timer of this period (its default precision). */
const LOOP_SAMPLE_MS = 10;

/**
 * How late Herald's event loop ran since the previous call (prom-client resets its histogram at
 * each scrape), ms beyond the sampling timer's period: how long Herald kept work waiting.
 */
export async function heraldLoopDelay(herald: HeraldProcess): Promise<{ p99: number; max: number }> {
  const text = await scrape(herald);
  return {
    p99: metric(text, 'herald_process_nodejs_eventloop_lag_p99_seconds') * 1000 - LOOP_SAMPLE_MS,
    max: metric(text, 'herald_process_nodejs_eventloop_lag_max_seconds') * 1000 - LOOP_SAMPLE_MS,
  };
}

/** One reading of Herald's memory. */
export async function heraldMemory(herald: HeraldProcess): Promise<HeraldMemory> {
  const [rss, text] = await Promise.all([rssBytes(herald.pid), scrape(herald)]);
  return {
    rss,
    heapUsed: metric(text, 'herald_process_nodejs_heap_size_used_bytes'),
    external: metric(text, 'herald_process_nodejs_external_memory_bytes'),
  };
}

/**
 * The median of a few readings, `intervalMs` apart, after `settleMs` of quiet; with an inspector,
 * after a forced full garbage collection (so garbage not yet collected does not count).
 */
export async function settledMemory(
  herald: HeraldProcess,
  inspector: Inspector | null = null,
  settleMs = 2_000,
  readings = 5,
  intervalMs = 300,
): Promise<HeraldMemory> {
  await sleep(settleMs);
  if (inspector) {
    await inspector.collectGarbage();
    await inspector.collectGarbage();
    await sleep(500);
  }
  const all: HeraldMemory[] = [];
  for (let i = 0; i < readings; i++) {
    if (i) await sleep(intervalMs);
    all.push(await heraldMemory(herald));
  }
  return {
    rss: median(all.map((m) => m.rss)),
    heapUsed: median(all.map((m) => m.heapUsed)),
    external: median(all.map((m) => m.external)),
  };
}

/**
 * Connects one resuming client per user (each reconnects with `after` when dropped); throws naming
 * how many did not connect.
 */
export async function connectResuming(fleet: Fleet, url: string, users: string[], r: RealtimeOptions) {
  const c = await fleet.connect({
    url,
    users,
    secret: BENCH_JWT_SECRET,
    concurrency: r.connectConcurrency,
    reconnect: true,
    ack: r.ack,
    timeoutMs: 120_000,
  });
  if (c.failed) throw new Error(`${c.failed} of ${users.length} sockets did not connect: ${c.errors.join('; ')}`);
  return c;
}

export interface PacedPosts {
  accepted: number;
  errors: number;
  /** POST → 202 of each accepted notification, ms. */
  posts: number[];
  /** monotonicMs() when each notification's 202 arrived, by notification id. */
  acceptedAt: Map<string, number>;
  /** Notifications answered 202, by recipient. */
  byUser: Map<string, number>;
  pace: PaceResult;
}

/**
 * Posts single-recipient in_app notifications open-loop at `rate`/s for `seconds` (at most
 * `maxInFlight` unanswered), to `users` in turn from `cursor.next` on; each carries its POST time
 * in `data.sentAt` (monotonicMs, the clock the client processes share).
 */
export async function postPaced(
  client: HeraldClient,
  users: readonly string[],
  cursor: { next: number },
  rate: number,
  seconds: number,
  maxInFlight: number,
  category = 'bench.e2e',
): Promise<PacedPosts> {
  const posts: number[] = [];
  const acceptedAt = new Map<string, number>();
  const byUser = new Map<string, number>();
  let accepted = 0;
  let errors = 0;
  const count = Math.round(seconds * rate);
  const pace = await paced(count, rate, maxInFlight, seconds * 1000 + 30_000, async () => {
    const user = users[cursor.next++ % users.length] as string;
    const sentAt = monotonicMs();
    try {
      const id = await client.send({
        to: [user],
        category,
        channels: ['in_app'],
        title: 'New message',
        body: 'Bob: are you there?',
        data: { sentAt },
      });
      const at = monotonicMs();
      accepted++;
      posts.push(at - sentAt);
      acceptedAt.set(id, at);
      byUser.set(user, (byUser.get(user) ?? 0) + 1);
    } catch {
      errors++;
    }
  });
  return { accepted, errors, posts, acceptedAt, byUser, pace };
}

/** POST → socket latency percentiles, and the same split at the 202 (e2e-latency, dist-e2e). */
export const LATENCY_SPLIT_COLUMNS: Column[] = [
  { key: 'p50', label: 'p50 ms', better: 'lower', digits: 1 },
  { key: 'p99', label: 'p99 ms', better: 'lower', digits: 1 },
  { key: 'p999', label: 'p99.9 ms', digits: 1 },
  { key: 'max', label: 'max ms', digits: 1 },
  { key: 'postP50', label: 'POST→202 p50 ms', digits: 1 },
  { key: 'postP99', label: 'POST→202 p99 ms', digits: 1 },
  { key: 'afterP50', label: '202→socket p50 ms', digits: 1 },
  { key: 'afterP99', label: '202→socket p99 ms', digits: 1 },
];
