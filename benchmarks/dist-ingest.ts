/**
 * dist-ingest: durable accepts/s of single-recipient POST /v1/notifications in the distributed
 * mode, with one api process and with two (lib/cluster.ts: PostgreSQL + a private Redis), and
 * nothing else running — no worker, no scheduler, no gateway: pure ingest (each accept is a
 * PostgreSQL group commit plus, with the Redis Streams bus, an announcement on Redis).
 *
 * The load: one wrk per api process (lib/wrk.ts, one thread each), --connections split between
 * them, warm-up then --duration seconds, all wrk instances at once. Afterwards every process is
 * killed (SIGKILL) and every id answered 202 must be in the database (`lost` = 0).
 *
 * On a 2-core machine the load generators, PostgreSQL, Redis and Herald share the cores, so two
 * api processes cannot be expected to beat one; what predicts a larger machine is the CPU each
 * part spends per 1,000 accepts, shown per api process, for PostgreSQL's backends, for Redis and
 * for wrk, and `cores busy` (everything measured ÷ wall time) says how close to the machine's
 * limit the run was.
 */
import { loadavg } from 'node:os';
import { BODY } from './ingest.ts';
import { busOf, type CpuUsed, cpuUsed, startCluster } from './lib/cluster.ts';
import { BENCH_API_KEY } from './lib/herald-process.ts';
import type { Cell } from './lib/report.ts';
import type { BenchOptions, Scenario } from './lib/scenario.ts';
import { type LoadGeneratorRun, runWrk, wrkAvailable } from './lib/wrk.ts';

const VARIANTS = [1, 2];

export const scenario: Scenario = {
  name: 'dist-ingest',
  summary: 'distributed mode: accepts/s with 1 and 2 api processes (no worker), CPU per 1,000 accepts per process',
  headline: 'rate',
  stores: ['postgres'],
  columns: [
    { key: 'bus', label: 'bus' },
    { key: 'processes', label: 'api processes' },
    { key: 'rate', label: 'accepts/s', better: 'higher' },
    { key: 'split', label: 'per process /s' },
    { key: 'p50', label: 'p50 ms', digits: 1 },
    { key: 'p99', label: 'p99 ms', better: 'lower', digits: 1 },
    { key: 'apiCpu', label: 'api CPU ms/1k (each)' },
    { key: 'apiCpuMean', label: 'api CPU ms/1k', better: 'lower', digits: 1 },
    { key: 'perCore', label: 'accepts per api CPU-s' },
    { key: 'pgCpu', label: 'PG CPU ms/1k', digits: 1 },
    { key: 'redisCpu', label: 'Redis CPU ms/1k', digits: 1 },
    { key: 'wrkCpu', label: 'wrk CPU ms/1k', digits: 1 },
    { key: 'busy', label: 'cores busy', digits: 2 },
    { key: 'non2xx', label: 'non-2xx' },
    { key: 'errors', label: 'errors' },
    { key: 'lost', label: 'lost' },
    { key: 'load', label: 'load 1m', digits: 1 },
  ],
  async trial(_store, o, log) {
    if (!wrkAvailable()) throw new Error('dist-ingest needs wrk (apt-get install wrk)');
    const rows: Record<string, Cell>[] = [];
    for (const n of VARIANTS) rows.push({ variant: `${n} api`, bus: busOf(o.env), ...(await measure(n, o, log)) });
    return { rows };
  },
};

let runs = 0;

async function measure(n: number, o: BenchOptions, log: (m: string) => void): Promise<Record<string, Cell>> {
  log(`starting ${n} api process${n > 1 ? 'es' : ''} (PostgreSQL + Redis, no worker)`);
  const cluster = await startCluster(
    Array.from({ length: n }, (_, i) => ({ name: `api-${i + 1}`, roles: 'api' })),
    { env: o.env, cpuProfDir: o.cpuProfDir, log },
  );
  try {
    const apis = cluster.members;
    const connections = Math.max(1, Math.round(o.connections / n));
    const accepted: string[] = [];
    const wave = async (seconds: number) => {
      const all = await Promise.all(
        apis.map((m) =>
          runWrk({
            url: m.herald.url,
            authorization: `Bearer ${BENCH_API_KEY}`,
            body: BODY,
            connections,
            seconds,
            runId: `${process.pid}-${++runs}`,
          }),
        ),
      );
      for (const r of all) for (const id of r.ids) accepted.push(id);
      return all;
    };
    log(`warm-up ${o.warmup} s`);
    await wave(o.warmup);
    log(`measuring ${o.duration} s: ${n} wrk × ${connections} connections`);
    const load1m = loadavg()[0] ?? 0;
    const cpu0 = await cluster.cpu();
    const runsNow = await wave(o.duration);
    const cpu1 = await cluster.cpu();
    await Promise.all(apis.map((m) => m.herald.kill()));
    const found = await apis[0]?.herald.inspect(async (q) => {
      let hits = 0;
      for (let i = 0; i < accepted.length; i += 20_000) {
        const [{ k }] = await q('SELECT count(*)::int AS k FROM notifications WHERE id = ANY($1::uuid[])', [
          accepted.slice(i, i + 20_000),
        ]);
        hits += k;
      }
      return hits;
    });
    return figures(
      runsNow,
      cpuUsed(cpu0, cpu1),
      apis.map((m) => m.name),
      accepted.length - (found ?? 0),
      load1m,
    );
  } catch (e) {
    process.stderr.write(`Herald logs:\n${cluster.logTails()}\n`);
    throw e;
  } finally {
    await cluster.cleanup();
  }
}

function figures(
  runs: LoadGeneratorRun[],
  cpu: CpuUsed,
  names: string[],
  lost: number,
  load1m: number,
): Record<string, Cell> {
  const seconds = Math.max(...runs.map((r) => r.seconds));
  const total = runs.reduce((s, r) => s + r.ids.length, 0);
  const per1k = (ms: number, count: number) => (ms * 1000) / Math.max(1, count);
  const apiCpu = names.map((name, i) => per1k(cpu.processes[name] ?? 0, runs[i]?.ids.length ?? 0));
  const apiMs = names.reduce((s, name) => s + (cpu.processes[name] ?? 0), 0);
  const wrkMs = runs.reduce((s, r) => s + r.cpuMs, 0);
  return {
    processes: names.length,
    rate: Math.round(total / seconds),
    split: runs.map((r) => Math.round(r.ids.length / r.seconds).toLocaleString('en-US')).join(' + '),
    // Latency: the slowest generator's percentile (they ran at once).
    p50: Math.max(...runs.map((r) => r.p50)),
    p99: Math.max(...runs.map((r) => r.p99)),
    apiCpu: apiCpu.map((x) => x.toFixed(0)).join(' / '),
    apiCpuMean: per1k(apiMs, total),
    perCore: Math.round((total * 1000) / Math.max(1, apiMs)),
    pgCpu: per1k(cpu.postgres, total),
    redisCpu: per1k(cpu.redis, total),
    wrkCpu: per1k(wrkMs, total),
    busy: (apiMs + cpu.postgres + cpu.redis + wrkMs) / (seconds * 1000),
    non2xx: runs.reduce((s, r) => s + r.non2xx, 0),
    errors: runs.reduce((s, r) => s + r.errors, 0),
    lost,
    load: load1m,
  };
}
