/**
 * Herald in its own child process (`node --import tsx src/cli.ts start`), so that the load
 * generator never shares Herald's event loop, on a fresh store: an empty PGlite data folder, or a
 * fresh PostgreSQL database that is dropped afterwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { cpuByPid, processCpuMs } from './cpu.ts';
import { ADMIN_URL, type FreshDatabase, freshDatabase, queryPostgres } from './postgres.ts';
import { sleep } from './stats.ts';

export type StoreKind = 'pglite' | 'postgres';
export const STORES: readonly StoreKind[] = ['pglite', 'postgres'];

export const BENCH_API_KEY = 'bench-api-key-0123456789abcdef';
export const BENCH_WEBHOOK_SECRET = `whsec_${Buffer.from('bench-webhook-secret-0123456789').toString('base64')}`;
const REPO = resolve(import.meta.dirname, '..', '..');

export interface HeraldStartOptions {
  store: StoreKind;
  /** Comma-separated roles (api, worker, scheduler); default every role, as `npm start`. */
  roles?: string;
  /** Extra environment for Herald (e.g. HERALD_PG_POOL_SIZE). */
  env?: Record<string, string>;
  /** Write a V8 CPU profile of Herald into this folder (written when Herald stops with SIGTERM). */
  cpuProfDir?: string;
  /**
   * PostgreSQL only: run on this database, shared with other processes (lib/cluster.ts), instead
   * of a fresh one; cleanup() then leaves it to its owner.
   */
  database?: FreshDatabase;
}

type Query = (text: string, params?: unknown[]) => Promise<any[]>;

export interface HeraldProcess {
  url: string;
  store: StoreKind;
  pid: number;
  /** Graceful stop (SIGTERM: commits what was accepted, finishes held deliveries). */
  stop(): Promise<void>;
  /** A crash: SIGKILL, nothing gets to finish. */
  kill(): Promise<void>;
  /** Read the store directly. PGlite: only after stop()/kill() (one process per data folder). */
  inspect<T>(fn: (query: Query) => Promise<T>): Promise<T>;
  /** CPU ms used so far by Herald's process and by each of its PostgreSQL backends (PGlite runs inside Herald). */
  cpu(): Promise<{ herald: number; backends: Map<number, number> }>;
  /** Transactions committed or rolled back so far in the run's PostgreSQL database (pg_stat_database; null on PGlite). */
  transactions(): Promise<number | null>;
  /** Stops Herald if it still runs and throws its store away. */
  cleanup(): Promise<void>;
  /** The last lines Herald wrote (for error messages). */
  logTail(): string;
}

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => ok(port));
    });
  });
}

export async function startHeraldProcess(options: HeraldStartOptions): Promise<HeraldProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), 'herald-bench-'));
  let db: FreshDatabase | null = null;
  if (options.store === 'postgres') db = options.database ?? (await freshDatabase());
  const ownsDatabase = !options.database;
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    PORT: String(port),
    HOST: '127.0.0.1',
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEYS: BENCH_API_KEY,
    HERALD_JWT_SECRET: 'bench-jwt-secret-0123456789abcdef',
    HERALD_WEBHOOK_SECRET: BENCH_WEBHOOK_SECRET,
    HERALD_LOG_LEVEL: 'warn',
    // The bench's receivers listen on loopback, which Herald reaches only when allowed.
    HERALD_EGRESS_ALLOW: '127.0.0.0/8,::1/128',
    ...(db ? { DATABASE_URL: db.url } : {}),
    ...options.env,
  };
  const nodeArgs = ['--import', 'tsx'];
  if (options.cpuProfDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`);
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeArgs, 'src/cli.ts', 'start', '--role', options.roles ?? 'api,worker,scheduler'],
    { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) tail.push(line);
    if (tail.length > 200) tail.splice(0, tail.length - 200);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((r) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      r();
    }),
  );
  const running = () => exitCode === undefined;
  const logTail = () => tail.slice(-30).join('\n');

  const signal = async (sig: NodeJS.Signals, timeoutMs: number) => {
    if (!running()) return;
    child.kill(sig);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  const cleanup = async () => {
    await signal('SIGKILL', 5_000);
    if (ownsDatabase) await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (!running()) {
      await cleanup();
      throw new Error(`Herald exited during start-up (code ${exitCode}):\n${logTail()}`);
    }
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await cleanup();
      throw new Error(`Herald was not ready after 120 s:\n${logTail()}`);
    }
    await sleep(100);
  }

  return {
    url,
    store: options.store,
    pid: child.pid as number,
    stop: () => signal('SIGTERM', 60_000),
    kill: () => signal('SIGKILL', 5_000),
    async inspect(fn) {
      if (db) return queryPostgres(db.url, fn);
      if (running()) throw new Error('stop Herald before opening its PGlite data folder');
      const pglite = await PGlite.create({ dataDir: join(dataDir, 'pgdata') });
      try {
        return await fn(async (text, params) => (await pglite.query(text, params)).rows as any[]);
      } finally {
        await pglite.close();
      }
    },
    async cpu() {
      const pids = db
        ? await queryPostgres(ADMIN_URL, (q) =>
            q('SELECT pid FROM pg_stat_activity WHERE datname = $1', [db?.name]).then((rows) =>
              rows.map((r) => r.pid as number),
            ),
          )
        : [];
      const [herald, backends] = await Promise.all([processCpuMs(child.pid as number), cpuByPid(pids)]);
      return { herald, backends };
    },
    async transactions() {
      if (!db) return null;
      const name = db.name;
      // The statistics collector reports with a delay of up to 500 ms (PostgreSQL 15: at transaction end, flushed ≤ 1 s).
      const [row] = await queryPostgres(ADMIN_URL, (q) =>
        q('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1', [name]),
      );
      return Number(row?.n ?? 0);
    },
    cleanup,
    logTail,
  };
}

/** Sum and count of Herald's notifications-per-commit histogram (null without one: the ceiling server). */
export async function commitSizes(url: string): Promise<{ sum: number; count: number } | null> {
  const text = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${BENCH_API_KEY}` } }).then(
    (r) => (r.ok ? r.text() : ''),
    () => '',
  );
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  const sum = read('herald_ingest_commit_notifications_sum');
  const count = read('herald_ingest_commit_notifications_count');
  return Number.isFinite(sum) && Number.isFinite(count) ? { sum, count } : null;
}
