/**
 * Benchmark dispatcher: `npm run bench -- <scenario> [--store pglite|postgres|both] [options]`.
 * Runs the scenario on each store (each run on a fresh Herald child process and a fresh store),
 * prints a table, and writes bench-results/<scenario>-<store>-<timestamp>.json.
 */
import { parseArgs } from 'node:util';
import { scenario as batch } from './batch.ts';
import { scenario as bus } from './bus.ts';
import { scenario as channels } from './channels.ts';
import { scenario as deliver } from './deliver.ts';
import { scenario as distDeliver } from './dist-deliver.ts';
import { scenario as distE2e } from './dist-e2e.ts';
import { scenario as distIngest } from './dist-ingest.ts';
import { scenario as distWs } from './dist-ws.ts';
import { scenario as e2eLatency } from './e2e-latency.ts';
import { scenario as fanout } from './fanout.ts';
import { scenario as ingest } from './ingest.ts';
import { STORES, type StoreKind } from './lib/herald-process.ts';
import { REALTIME_FLAGS, REALTIME_USAGE, realtimeOptions } from './lib/realtime.ts';
import { type Cell, machineNote, printTable, writeResult } from './lib/report.ts';
import type { BenchOptions, Scenario } from './lib/scenario.ts';
import { median } from './lib/stats.ts';
import { wrkAvailable } from './lib/wrk.ts';
import { scenario as priority } from './priority.ts';
import { scenario as reconnectChaos } from './reconnect-chaos.ts';
import { scenario as retryStorm } from './retry-storm.ts';
import { scenario as wsStorm } from './ws-storm.ts';

const SCENARIOS: Record<string, Scenario> = {
  ingest,
  deliver,
  priority,
  'ws-storm': wsStorm,
  'reconnect-chaos': reconnectChaos,
  'e2e-latency': e2eLatency,
  'retry-storm': retryStorm,
  channels,
  batch,
  fanout,
  bus,
  'dist-ingest': distIngest,
  'dist-deliver': distDeliver,
  'dist-e2e': distE2e,
  'dist-ws': distWs,
};

const USAGE = `usage: npm run bench -- <scenario> [options]

scenarios:
${Object.values(SCENARIOS)
  .map((s) => `  ${s.name.padEnd(15)} ${s.summary}`)
  .join('\n')}

options:
  --store pglite|postgres|both   store(s) to run on (default both)
  --repeat n                     runs per store; the table shows each, the median and the best (default 1)
  --duration s                   ingest: measured seconds (default 10)
  --warmup s                     ingest: warm-up seconds (default 2)
  --connections n                ingest: load-generator connections (default 100)
  --roles all|api|all,api        ingest: Herald with every role (as npm start), with --role api only, or both (default all)
  --load wrk|autocannon          ingest: the load generator (default wrk where installed — apt-get install wrk —, else autocannon)
  --ceiling                      ingest: also load a bare Fastify POST→202 server the same way (this machine's ceiling now)
  --count n                      deliver: notifications to deliver (default 20000); channels: emails and pushes each
  --users n                      deliver: users with a webhookUrl (default 1000); channels: users with an email and a device
  --critical n                   priority: critical notifications per phase (default 200)
  --rate n                       priority: critical notifications per second (default 20)
  --blast n                      priority: bulk deliveries queued before the second phase (default 100000)
  --in-flight n                  batch: batch requests kept in flight (default 4)
  --subscribers n                fanout: subscribers of the topic (default 1000000)
  --deliveries n                 retry-storm, bus: webhook deliveries, 100 recipients per notification (default 10000)
${REALTIME_USAGE}
  --env KEY=VALUE                extra environment for Herald (repeatable), e.g. --env HERALD_PG_POOL_SIZE=32
  --cpu-prof dir                 write a V8 CPU profile of Herald into dir
`;

function usage(message?: string): never {
  if (message) process.stderr.write(`bench: ${message}\n\n`);
  process.stderr.write(USAGE);
  process.exit(2);
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) usage(`--${name} must be a positive number, not ${JSON.stringify(raw)}`);
  return n;
}

let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      store: { type: 'string', default: 'both' },
      repeat: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      roles: { type: 'string', default: 'all' },
      ceiling: { type: 'boolean', default: false },
      load: { type: 'string' },
      count: { type: 'string' },
      users: { type: 'string' },
      critical: { type: 'string' },
      rate: { type: 'string' },
      blast: { type: 'string' },
      subscribers: { type: 'string' },
      deliveries: { type: 'string' },
      'in-flight': { type: 'string' },
      env: { type: 'string', multiple: true },
      'cpu-prof': { type: 'string' },
      ...REALTIME_FLAGS,
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}
try {
  parsed = parse();
} catch (e) {
  usage((e as Error).message);
}
const { values: v, positionals } = parsed;
if (v.help) usage();
const name = positionals[0];
if (!name) usage('name a scenario');
if (positionals.length > 1) usage(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
const scenario = SCENARIOS[name];
if (!scenario) usage(`unknown scenario "${name}"`);
const asked: readonly StoreKind[] =
  v.store === 'both'
    ? STORES
    : STORES.includes(v.store as StoreKind)
      ? [v.store as StoreKind]
      : usage('--store must be pglite, postgres or both');
const stores = asked.filter((s) => !scenario.stores || scenario.stores.includes(s));
if (!stores.length) usage(`${scenario.name} runs only on ${scenario.stores?.join(', ')}`);

const env: Record<string, string> = {};
for (const kv of v.env ?? []) {
  const eq = kv.indexOf('=');
  if (eq <= 0) usage(`--env takes KEY=VALUE, not ${JSON.stringify(kv)}`);
  env[kv.slice(0, eq)] = kv.slice(eq + 1);
}
const options: BenchOptions = {
  duration: positive('duration', v.duration, 10),
  warmup: positive('warmup', v.warmup, 2),
  connections: Math.round(positive('connections', v.connections, 100)),
  roleSets: parseRoleSets(v.roles ?? 'all'),
  load: loadGenerator(v.load),
  ceiling: v.ceiling ?? false,
  count: Math.round(positive('count', v.count, 20_000)),
  users: Math.round(positive('users', v.users, 1_000)),
  critical: Math.round(positive('critical', v.critical, 200)),
  rate: positive('rate', v.rate, 20),
  blast: Math.round(positive('blast', v.blast, 100_000)),
  subscribers: Math.round(positive('subscribers', v.subscribers, 1_000_000)),
  deliveries: Math.round(positive('deliveries', v.deliveries, 10_000)),
  inFlight: Math.round(positive('in-flight', v['in-flight'], 4)),
  env,
  cpuProfDir: v['cpu-prof'],
  ...realtimeOptions(v, usage),
};
function loadGenerator(raw: string | undefined): BenchOptions['load'] {
  if (raw === undefined) return wrkAvailable() ? 'wrk' : 'autocannon';
  if (raw !== 'wrk' && raw !== 'autocannon') usage('--load must be wrk or autocannon');
  if (raw === 'wrk' && !wrkAvailable()) usage('--load wrk: wrk is not installed (apt-get install wrk)');
  return raw;
}
function parseRoleSets(raw: string): ('all' | 'api')[] {
  const sets = raw.split(',').map((x) => x.trim());
  if (!sets.length || sets.some((x) => x !== 'all' && x !== 'api')) usage('--roles must be all, api or all,api');
  return [...new Set(sets)] as ('all' | 'api')[];
}
const repeat = Math.round(positive('repeat', v.repeat, 1));
const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`;
const log = (m: string) => process.stderr.write(`  ${m}\n`);

const columns = [
  { key: 'store', label: 'store' },
  { key: 'variant', label: 'variant' },
  { key: 'run', label: 'run' },
  ...scenario.columns,
];

for (const store of stores) {
  const machine = machineNote();
  const startedAt = new Date().toISOString();
  process.stderr.write(
    `\n${scenario.name} on ${store} (${repeat} run${repeat > 1 ? 's' : ''}; load ${machine.loadavg1m})\n`,
  );
  const runs: { rows: Record<string, Cell>[]; details?: unknown }[] = [];
  for (let i = 1; i <= repeat; i++) {
    log(`run ${i}/${repeat}`);
    const t = await scenario.trial(store, options, log);
    runs.push({ rows: t.rows.map((r) => ({ store, run: String(i), ...r })), details: t.details });
  }
  const rows = runs.flatMap((r) => r.rows);
  const summary = repeat > 1 ? summarizeRuns(scenario, rows) : [];
  process.stdout.write(`\n${scenario.name} — ${store}\n`);
  printTable(columns, [...rows, ...summary]);
  const file = await writeResult(scenario.name, store, {
    scenario: scenario.name,
    store,
    command,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    options,
    columns: scenario.columns,
    runs,
    summary,
  });
  process.stdout.write(`→ ${file}\n`);
}

/** Per variant: the median of each column, and the run with the best headline value. */
function summarizeRuns(s: Scenario, rows: Record<string, Cell>[]): Record<string, Cell>[] {
  const out: Record<string, Cell>[] = [];
  const headline = s.columns.find((c) => c.key === s.headline);
  for (const variant of [...new Set(rows.map((r) => r.variant))]) {
    const mine = rows.filter((r) => r.variant === variant);
    const med: Record<string, Cell> = { store: mine[0]?.store ?? null, variant: variant ?? null, run: 'median' };
    for (const c of s.columns) {
      const values = mine.map((r) => r[c.key]);
      const nums = values.filter((x): x is number => typeof x === 'number');
      // Numbers: the median; words (yes/no): the word when every run agrees.
      med[c.key] = nums.length === mine.length ? median(nums) : new Set(values).size === 1 ? (values[0] ?? null) : null;
    }
    const score = (r: Record<string, Cell>) => {
      const x = r[s.headline];
      if (typeof x !== 'number') return Number.NEGATIVE_INFINITY;
      return headline?.better === 'lower' ? -x : x;
    };
    const best = mine.reduce((a, b) => (score(b) > score(a) ? b : a), mine[0] as Record<string, Cell>);
    out.push(med, { ...best, run: `best (${best.run})` });
  }
  return out;
}
