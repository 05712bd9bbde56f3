/**
 * A Herald cluster of child processes, one per role group, as an operator runs it:
 * `node --import tsx src/cli.ts start --role <roles>` on one PostgreSQL database (a fresh one on
 * the local server unless the scenario brings its own), optionally one Redis, each process on a
 * port chosen before it starts (so a restart comes back at the same address, as behind a load
 * balancer), every process with the same secrets: the API key (producers call any api process),
 * the JWT secret (a token minted by an api process must verify at every gateway) and the webhook
 * secret (every worker signs, the receiver verifies one key).
 *
 * Guarantees: `startCluster` resolves once every process answers `/readyz` 200; `stop()` ends every
 * process (SIGTERM, SIGKILL after 10 s) and drops the fresh database, and a process-exit hook
 * SIGKILLs whatever is still running, so a failed or interrupted scenario leaves no orphan.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freshPostgresUrl } from '../test/support/databases.ts';
import { freePort } from '../test/support/redis.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const CHAOS_API_KEY = 'chaos-api-key-0123456789abcdef';
export const CHAOS_JWT_SECRET = 'chaos-jwt-secret-0123456789abcdef';
export const CHAOS_WEBHOOK_SECRET = `whsec_${Buffer.from('chaos-webhook-secret-0123456789').toString('base64')}`;

export type Role = 'api' | 'worker' | 'gateway' | 'scheduler';

/** Every child this module started and that has not exited: killed if the harness itself exits. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export interface ClusterOptions {
  /** Processes with only that role; default 0 each. */
  api?: number;
  worker?: number;
  gateway?: number;
  scheduler?: number;
  /** Processes with several roles each, e.g. `[['api', 'worker', 'scheduler']]`. */
  combined?: Role[][];
  /** Settings for every process, over the defaults below. */
  env?: Record<string, string>;
  /** This database instead of a fresh one on the local server (not dropped at stop). */
  databaseUrl?: string;
  redisUrl?: string;
  /** Progress lines (process started, killed, restarted). */
  log?: (line: string) => void;
}

export interface ClusterProcess {
  /** `api-1`, `worker-2`, `api+worker+scheduler-1`. */
  name: string;
  roles: readonly Role[];
  port: number;
  url: string;
  /** The running child's pid (undefined while it is down). */
  pid(): number | undefined;
  alive(): boolean;
  /** How many times it was started (1 after startCluster). */
  starts(): number;
  /** Everything it printed, across restarts (bounded to the last 200 kB). */
  output(): string;
  /** Sends `signal` (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and waits for `/readyz`. */
  restart(): Promise<void>;
}

export interface Cluster {
  processes: ClusterProcess[];
  withRole(role: Role): ClusterProcess[];
  databaseUrl: string;
  /** Queries the cluster's database (a small pool of its own). */
  query<T = any>(text: string, params?: unknown[]): Promise<T[]>;
  /** The last `chars` of each process's output, by name (for the JSON result of a failed run). */
  outputs(chars?: number): Record<string, string>;
  /** Ends every process (SIGTERM, then SIGKILL), closes the pool, drops a fresh database. */
  stop(): Promise<void>;
}

/** Defaults for a chaos run: fast polls and retries, logs at warn, loopback receivers allowed. */
function baseEnv(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    HOST: '127.0.0.1',
    HERALD_API_KEYS: CHAOS_API_KEY,
    HERALD_JWT_SECRET: CHAOS_JWT_SECRET,
    HERALD_WEBHOOK_SECRET: CHAOS_WEBHOOK_SECRET,
    HERALD_EGRESS_ALLOW: '127.0.0.0/8,::1/128',
    HERALD_LOG_LEVEL: 'warn',
    HERALD_POLL_MS: '50',
    HERALD_RETRY_BASE_MS: '200',
    // Several processes share one server (max_connections 100 on the local one).
    HERALD_PG_POOL_SIZE: '8',
  };
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const log = options.log ?? (() => {});
  const fresh = options.databaseUrl ? null : await freshPostgresUrl();
  const databaseUrl = options.databaseUrl ?? (fresh as { url: string }).url;
  const groups: { name: string; roles: Role[] }[] = [];
  for (const role of ['api', 'worker', 'gateway', 'scheduler'] as const) {
    for (let i = 1; i <= (options[role] ?? 0); i++) groups.push({ name: `${role}-${i}`, roles: [role] });
  }
  (options.combined ?? []).forEach((roles, i) => {
    groups.push({ name: `${roles.join('+')}-${i + 1}`, roles });
  });
  const env = {
    ...baseEnv(),
    DATABASE_URL: databaseUrl,
    ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
    ...options.env,
  };
  const dataDir = await mkdtemp(join(tmpdir(), 'herald-chaos-'));
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  // A PostgreSQL restart (pg-restart) ends idle connections: the next query reconnects.
  pool.on('error', () => {});
  const processes: ClusterProcess[] = [];
  try {
    for (const g of groups) processes.push(await defineProcess(g.name, g.roles, env, dataDir, log));
    // The first process alone, then the rest together: on a fresh database, processes starting
    // together race on `CREATE TABLE IF NOT EXISTS herald_migrations`, which src/store/migrate.ts
    // runs before taking its advisory lock, and all but one fail with "duplicate key value violates
    // unique constraint pg_type_typname_nsp_index" (seen 2026-12; reported, not worked around in src/).
    const [first, ...rest] = processes;
    await first?.restart();
    await Promise.all(rest.map((p) => p.restart()));
  } catch (e) {
    for (const p of processes) await p.kill('SIGKILL');
    await pool.end();
    await fresh?.drop();
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }
  return {
    processes,
    withRole: (role) => processes.filter((p) => p.roles.includes(role)),
    databaseUrl,
    async query(text, params) {
      return (await pool.query(text, params as unknown[] | undefined)).rows;
    },
    outputs: (chars = 20_000) => Object.fromEntries(processes.map((p) => [p.name, p.output().slice(-chars)])),
    async stop() {
      await Promise.all(processes.map((p) => p.kill('SIGTERM')));
      await pool.end().catch(() => {});
      await fresh?.drop().catch((e: unknown) => log(`could not drop the database: ${(e as Error).message}`));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function defineProcess(
  name: string,
  roles: Role[],
  env: Record<string, string>,
  dataRoot: string,
  log: (line: string) => void,
): Promise<ClusterProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = join(dataRoot, name);
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let out = '';
  let starts = 0;
  const append = (c: Buffer) => {
    out += c.toString('utf8');
    if (out.length > 200_000) out = out.slice(-150_000);
  };
  const alive = () => child !== null && child.exitCode === null && child.signalCode === null;

  async function kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = child;
    if (!c || !alive()) return;
    c.kill(signal);
    const hard = signal === 'SIGKILL' ? null : setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    if (hard) clearTimeout(hard);
  }

  async function restart(): Promise<void> {
    if (alive()) throw new Error(`${name} is running (pid ${child?.pid}): kill it before restarting it`);
    const c = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--role', roles.join(',')], {
      cwd: ROOT,
      env: { ...env, PORT: String(port), HERALD_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    starts++;
    running.add(c);
    c.stdout?.on('data', append);
    c.stderr?.on('data', append);
    exited = new Promise<void>((resolve) =>
      c.once('exit', (code, signal) => {
        running.delete(c);
        out += `\n[chaos] ${name} (pid ${c.pid}) exited: code=${code} signal=${signal}\n`;
        resolve();
      }),
    );
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (!alive()) throw new Error(`${name} exited before it was ready:\n${out.slice(-4_000)}`);
      const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
      if (r?.status === 200) break;
      if (Date.now() > deadline) {
        await kill('SIGKILL');
        throw new Error(`${name} was not ready within 120 s:\n${out.slice(-4_000)}`);
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    log(`${name} (pid ${c.pid}) ready on ${url}${starts > 1 ? ` (start #${starts})` : ''}`);
  }

  return {
    name,
    roles,
    port,
    url,
    pid: () => (alive() ? child?.pid : undefined),
    alive,
    starts: () => starts,
    output: () => out,
    kill,
    restart,
  };
}
