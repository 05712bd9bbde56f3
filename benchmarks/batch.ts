/**
 * batch: recipients per second that POST /v1/notifications/batch makes durable, in two shapes —
 * 1,000 items × 1 recipient and 10 items × 1,000 recipients (issue 13: ≥ 150,000 recipients/s on
 * PostgreSQL) — each on a fresh Herald with every role (as `npm start`: its worker delivers the
 * in-app items while the batches arrive), or with `--role api` only (`--roles api` or `all,api`:
 * what ingest alone costs; nothing is delivered).
 *
 * `--in-flight n` batch requests are kept in flight (default 4) for a warm-up and then for
 * `--duration` seconds; every recipient is a distinct user, every item in_app. Only items answered
 * 202 count; a request counts when its answer arrives within the window. Afterwards Herald is
 * killed (SIGKILL) and the store read directly: every notification answered 202 must be there
 * (`lost` 0). CPU per 1,000 recipients (Herald; PostgreSQL's backends) and PostgreSQL transactions
 * per request are shown, and the mean notifications per group commit.
 */
import { loadavg } from 'node:os';
import { Pool } from 'undici';
import { cpuBetween } from './lib/cpu.ts';
import { BENCH_API_KEY, commitSizes, type StoreKind, startHeraldProcess } from './lib/herald-process.ts';
import type { Cell } from './lib/report.ts';
import type { BenchOptions, Scenario } from './lib/scenario.ts';
import { percentile } from './lib/stats.ts';

const SHAPES = [
  { variant: '1000 items × 1', items: 1_000, recipients: 1 },
  { variant: '10 items × 1000', items: 10, recipients: 1_000 },
] as const;
type Shape = (typeof SHAPES)[number];

export const scenario: Scenario = {
  name: 'batch',
  summary: 'recipients/s of POST /v1/notifications/batch (1,000 × 1 and 10 × 1,000)',
  headline: 'rate',
  columns: [
    { key: 'rate', label: 'recipients/s', better: 'higher' },
    { key: 'requests', label: 'batches' },
    { key: 'p50', label: 'p50 ms', better: 'lower' },
    { key: 'p99', label: 'p99 ms', better: 'lower' },
    { key: 'refused', label: 'non-200' },
    { key: 'lost', label: 'lost' },
    { key: 'heraldCpu', label: 'Herald CPU ms/1k', better: 'lower', digits: 1 },
    { key: 'pgCpu', label: 'PG CPU ms/1k', better: 'lower', digits: 1 },
    { key: 'tx', label: 'PG tx/batch', digits: 1 },
    { key: 'perCommit', label: 'per commit', digits: 0 },
    { key: 'load', label: 'load 1m', digits: 1 },
  ],
  async trial(store, options, log) {
    const rows: Record<string, Cell>[] = [];
    for (const set of options.roleSets) {
      const roles = set === 'all' ? 'api,worker,scheduler' : 'api';
      for (const shape of SHAPES) {
        const variant = set === 'all' ? shape.variant : `${shape.variant}, api only`;
        rows.push({ variant, ...(await measure(store, roles, shape, options, log)) });
      }
    }
    return { rows };
  },
};

let requestNo = 0;

/** A batch body of distinct users: `shape.items` in_app notifications of `shape.recipients` each. */
function body(shape: Shape): string {
  const r = ++requestNo;
  const items: string[] = [];
  for (let i = 0; i < shape.items; i++) {
    const to: string[] = [];
    for (let k = 0; k < shape.recipients; k++) to.push(`"u${r}-${i}-${k}"`);
    items.push(
      `{"to":[${to.join(',')}],"category":"bench.batch","channels":["in_app"],"title":"New comment","body":"Alice replied to your post"}`,
    );
  }
  return `{"notifications":[${items.join(',')}]}`;
}

interface Window {
  recipients: number;
  requests: number;
  refused: number;
  latencies: number[];
  ids: string[];
}

/** Keeps `inFlight` batches in flight for `seconds`; counts what was answered within them. */
async function drive(pool: Pool, shape: Shape, inFlight: number, seconds: number, ids: string[]): Promise<Window> {
  const w: Window = { recipients: 0, requests: 0, refused: 0, latencies: [], ids };
  const end = performance.now() + seconds * 1000;
  const lane = async () => {
    while (performance.now() < end) {
      const text = body(shape);
      const t0 = performance.now();
      const res = await pool.request({
        method: 'POST',
        path: '/v1/notifications/batch',
        headers: { authorization: `Bearer ${BENCH_API_KEY}`, 'content-type': 'application/json' },
        body: text,
      });
      const answer = await res.body.text();
      const t1 = performance.now();
      if (res.statusCode !== 200) {
        w.refused++;
        continue;
      }
      const results = (JSON.parse(answer) as { results: { status: number; id: string; recipients: number }[] }).results;
      for (const x of results) if (x.status === 202) ids.push(x.id);
      if (t1 > end) continue;
      w.requests++;
      w.latencies.push(t1 - t0);
      for (const x of results) if (x.status === 202) w.recipients += x.recipients;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return w;
}

async function measure(store: StoreKind, roles: string, shape: Shape, o: BenchOptions, log: (m: string) => void) {
  log(`${shape.variant}: starting Herald (${store}, --role ${roles})`);
  const herald = await startHeraldProcess({
    store,
    roles,
    env: o.env,
    ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
  });
  const pool = new Pool(herald.url, { connections: o.inFlight, keepAliveTimeout: 60_000, pipelining: 1 });
  const ids: string[] = [];
  try {
    log(`warm-up ${o.warmup} s`);
    await drive(pool, shape, o.inFlight, o.warmup, ids);
    log(`measuring ${o.duration} s with ${o.inFlight} batches in flight`);
    const load1m = loadavg()[0] ?? 0;
    const cpu0 = await herald.cpu();
    const tx0 = await herald.transactions();
    const commits0 = await commitSizes(herald.url);
    const t0 = performance.now();
    const w = await drive(pool, shape, o.inFlight, o.duration, ids);
    const seconds = (performance.now() - t0) / 1000;
    const commits1 = await commitSizes(herald.url);
    const tx1 = await herald.transactions();
    const cpu1 = await herald.cpu();
    const k = Math.max(1, w.recipients) / 1000;
    const figures = {
      rate: Math.round(w.recipients / Math.min(seconds, o.duration)),
      requests: w.requests,
      p50: Math.round(percentile(w.latencies, 50)),
      p99: Math.round(percentile(w.latencies, 99)),
      refused: w.refused,
      heraldCpu: (cpu1.herald - cpu0.herald) / k,
      pgCpu: cpu1.backends.size ? cpuBetween(cpu0.backends, cpu1.backends) / k : null,
      tx: tx0 !== null && tx1 !== null && w.requests ? (tx1 - tx0) / w.requests : null,
      perCommit:
        commits0 && commits1 && commits1.count > commits0.count
          ? (commits1.sum - commits0.sum) / (commits1.count - commits0.count)
          : null,
      load: load1m,
    };
    await pool.close();
    if (o.cpuProfDir) await herald.stop();
    else await herald.kill();
    const found = await herald.inspect(async (q) => {
      let hits = 0;
      for (let i = 0; i < ids.length; i += 20_000) {
        const [{ n }] = await q('SELECT count(*)::int AS n FROM notifications WHERE id = ANY($1::uuid[])', [
          ids.slice(i, i + 20_000),
        ]);
        hits += n;
      }
      return hits;
    });
    return { ...figures, lost: ids.length - found };
  } catch (e) {
    process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
    throw e;
  } finally {
    await pool.destroy().catch(() => {});
    await herald.cleanup();
  }
}
