/**
 * ingest: how many single-recipient POST /v1/notifications per second Herald makes durable.
 *
 * wrk (or autocannon: --load) posts small in_app notifications, each to a distinct user, on many
 * kept-alive connections, for a warm-up and then for --duration seconds. Only 202s count. Afterwards Herald
 * is killed with SIGKILL (a crash: nothing gets to finish) and the store is read directly: every
 * id answered 202 must be there ("lost" must be 0), and rows beyond the 202s may only be requests
 * still unanswered when the load generator stopped (committed, but the client had gone).
 *
 * CPU time per 202 (Herald's process; PostgreSQL's backends for this database) is shown too: on a
 * shared machine it moves much less than throughput does; so is the load generator's, which runs
 * on the same cores. With --ceiling, a bare Fastify server (lib/ceiling-server.ts) gets the same
 * load first, as a yardstick for the machine at that moment.
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import autocannon from 'autocannon';
import { cpuBetween, processCpuMs } from './lib/cpu.ts';
import { BENCH_API_KEY, commitSizes, freePort, type StoreKind, startHeraldProcess } from './lib/herald-process.ts';
import type { Cell } from './lib/report.ts';
import type { BenchOptions, Scenario } from './lib/scenario.ts';
import { sleep } from './lib/stats.ts';
import { type LoadGeneratorRun, runWrk } from './lib/wrk.ts';

/** The request body; `<id>` becomes a unique id (autocannon's idReplacement wants `[<id>]`). */
export const BODY = JSON.stringify({
  to: ['user-<id>'],
  category: 'bench.ingest',
  channels: ['in_app'],
  title: 'New comment',
  body: 'Alice replied to your post',
});
const ID = /"id":"([0-9a-f-]{36})"/;

export const scenario: Scenario = {
  name: 'ingest',
  summary: 'durable accepts/s of single-recipient POST /v1/notifications (wrk or autocannon)',
  headline: 'rate',
  columns: [
    { key: 'rate', label: 'accepts/s', better: 'higher' },
    { key: 'p50', label: 'p50 ms', better: 'lower', digits: 1 },
    { key: 'p99', label: 'p99 ms', better: 'lower', digits: 1 },
    { key: 'max', label: 'max ms', better: 'lower' },
    { key: 'accepted', label: '202s' },
    { key: 'non2xx', label: 'non-2xx' },
    { key: 'errors', label: 'errors' },
    { key: 'stored', label: 'stored' },
    { key: 'unanswered', label: 'in flight at stop' },
    { key: 'lost', label: 'lost' },
    { key: 'durable', label: 'durable' },
    { key: 'heraldCpu', label: 'Herald CPU µs/202', better: 'lower' },
    { key: 'pgCpu', label: 'PG CPU µs/202', better: 'lower' },
    { key: 'generator', label: 'load' },
    { key: 'loadCpu', label: 'load CPU µs/202' },
    { key: 'batch', label: 'per commit', digits: 1 },
    { key: 'load', label: 'load 1m', digits: 1 },
  ],
  async trial(store, options, log) {
    const rows: Record<string, Cell>[] = [];
    if (options.ceiling) rows.push({ variant: 'ceiling: bare Fastify', ...(await measureCeiling(options, log)) });
    for (const set of options.roleSets) {
      const [variant, roles] = set === 'all' ? ['all roles', 'api,worker,scheduler'] : ['api only', 'api'];
      rows.push({ variant, ...(await measure(store, roles, options, log)) });
    }
    return { rows };
  },
};

/** One run of the load generator, as the table counts it. */
type LoadRun = Omit<LoadGeneratorRun, 'ids' | 'unanswered'> & { accepted: number };

interface Load {
  /** Ids answered 202, warm-up included. */
  accepted: string[];
  /** Requests sent but not answered when the load generator stopped. */
  unanswered: number;
  run(seconds: number): Promise<LoadRun>;
}

/** The load generator against `url`, remembering every id answered 202. */
function loadOn(url: string, o: BenchOptions, log: (m: string) => void): Load {
  const load: Load = {
    accepted: [],
    unanswered: 0,
    async run(seconds) {
      const r = o.load === 'wrk' ? await wrkRun(url, o, seconds) : await autocannonRun(url, o, seconds);
      for (const id of r.ids) load.accepted.push(id);
      load.unanswered += r.unanswered;
      log(`  ${seconds} s: ${r.ids.length} accepted, ${r.non2xx} non-2xx, ${r.errors} errors`);
      return { ...r, accepted: r.ids.length };
    },
  };
  return load;
}

let runs = 0;
function wrkRun(url: string, o: BenchOptions, seconds: number): Promise<LoadGeneratorRun> {
  return runWrk({
    url,
    authorization: `Bearer ${BENCH_API_KEY}`,
    body: BODY,
    connections: o.connections,
    seconds,
    runId: `${process.pid}-${++runs}`,
  });
}

async function autocannonRun(url: string, o: BenchOptions, seconds: number): Promise<LoadGeneratorRun> {
  const ids: string[] = [];
  const cpu0 = process.cpuUsage();
  const r = await autocannon({
    url,
    connections: o.connections,
    duration: seconds,
    timeout: 30,
    idReplacement: true,
    requests: [
      {
        method: 'POST',
        path: '/v1/notifications',
        headers: { authorization: `Bearer ${BENCH_API_KEY}`, 'content-type': 'application/json' },
        body: BODY.replace('<id>', '[<id>]'),
        onResponse(status, body) {
          if (status !== 202) return;
          const id = ID.exec(body)?.[1];
          if (id) ids.push(id);
        },
      },
    ],
  });
  const cpu = process.cpuUsage(cpu0);
  const answered = Object.values(r.statusCodeStats).reduce((s, c) => s + c.count, 0);
  return {
    ids,
    unanswered: r.requests.sent - answered,
    seconds: r.duration,
    non2xx: r.non2xx,
    errors: r.errors,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/**
 * Warm-up, then the measured run; CPU of `pid` (and `backends`) and of the load generator (this
 * process) over the measured run, and the mean notifications per group commit.
 */
async function measured(
  load: Load,
  url: string,
  o: BenchOptions,
  log: (m: string) => void,
  cpu: () => Promise<{ herald: number; backends: Map<number, number> }>,
) {
  log(`warm-up ${o.warmup} s`);
  await load.run(o.warmup);
  log(`measuring ${o.duration} s with ${o.connections} connections (${o.load})`);
  const load1m = loadavg()[0] ?? 0;
  const cpu0 = await cpu();
  const commits0 = await commitSizes(url);
  const r = await load.run(o.duration);
  const commits1 = await commitSizes(url);
  const cpu1 = await cpu();
  const n = Math.max(1, r.accepted);
  const commits = commits0 && commits1 ? commits1.count - commits0.count : 0;
  return {
    r,
    figures: {
      rate: Math.round(r.accepted / r.seconds),
      p50: r.p50,
      p99: r.p99,
      max: r.max,
      accepted: load.accepted.length,
      non2xx: r.non2xx,
      errors: r.errors,
      heraldCpu: Math.round(((cpu1.herald - cpu0.herald) * 1000) / n),
      pgCpu: cpu1.backends.size ? Math.round((cpuBetween(cpu0.backends, cpu1.backends) * 1000) / n) : null,
      generator: o.load,
      loadCpu: Math.round((r.cpuMs * 1000) / n),
      batch: commits0 && commits1 && commits > 0 ? (commits1.sum - commits0.sum) / commits : null,
      load: load1m,
    },
  };
}

async function measure(store: StoreKind, roles: string, o: BenchOptions, log: (m: string) => void) {
  log(`starting Herald (${store}, --role ${roles})`);
  const herald = await startHeraldProcess({
    store,
    roles,
    env: o.env,
    ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
  });
  try {
    const load = loadOn(herald.url, o, log);
    const { figures } = await measured(load, herald.url, o, log, () => herald.cpu());

    // A crash right after the load: what was answered 202 must already be committed.
    // (With --cpu-prof Herald stops gently instead, or it could not write its profile.)
    if (o.cpuProfDir) await herald.stop();
    else await herald.kill();
    const { accepted, unanswered } = load;
    const { stored, found } = await herald.inspect(async (q) => {
      const [{ n }] = await q('SELECT count(*)::int AS n FROM notifications');
      let hits = 0;
      for (let i = 0; i < accepted.length; i += 20_000) {
        const [{ k }] = await q('SELECT count(*)::int AS k FROM notifications WHERE id = ANY($1::uuid[])', [
          accepted.slice(i, i + 20_000),
        ]);
        hits += k;
      }
      return { stored: n as number, found: hits };
    });
    const lost = accepted.length - found;
    const extra = stored - found;
    return {
      ...figures,
      stored,
      unanswered,
      lost,
      durable: lost === 0 && extra >= 0 && extra <= unanswered ? 'yes' : 'NO',
    };
  } catch (e) {
    process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
    throw e;
  } finally {
    await herald.cleanup();
  }
}

async function measureCeiling(o: BenchOptions, log: (m: string) => void) {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, 'lib', 'ceiling-server.ts')], {
    env: { ...process.env, PORT: String(port) },
    stdio: 'ignore',
  });
  try {
    const url = `http://127.0.0.1:${port}`;
    for (
      let i = 0;
      !(await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      ));
      i++
    ) {
      if (i > 300 || child.exitCode !== null) throw new Error('the ceiling server did not start');
      await sleep(100);
    }
    log('ceiling: bare Fastify POST→202');
    const cpu = async () => ({ herald: await processCpuMs(child.pid as number), backends: new Map<number, number>() });
    const { figures } = await measured(loadOn(url, o, log), url, o, log, cpu);
    return figures;
  } finally {
    child.kill('SIGKILL');
  }
}
