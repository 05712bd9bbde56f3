/**
 * A PostgreSQL server of the test's own (initdb into a temp folder, a free loopback port, trust
 * auth), for tests and chaos scenarios that stop and start PostgreSQL under a running Herald: the
 * machine's shared server must never be stopped, other tests use it.
 *
 * initdb and the server refuse to run as root; as root they run as the `postgres` system user
 * (runuser), which then owns the folder. `stop()` is `pg_ctl stop -m fast` (every connection is
 * terminated, as a restart does), `start()` starts it again on the same data and port. Fails with
 * what to install when the binaries are missing.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './redis.ts';

const run = promisify(execFile);

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/herald`: the database created for the test. */
  url: string;
  port: number;
  /** Fast shutdown: every session is terminated. */
  stop(): Promise<void>;
  /** Starts it again (same data, same port) and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops the server (immediate mode) and removes its folder. */
  cleanup(): Promise<void>;
}

/** The newest installed PostgreSQL's bin folder (Debian layout: /usr/lib/postgresql/<major>/bin). */
function binDir(): string {
  let majors: string[] = [];
  try {
    majors = readdirSync('/usr/lib/postgresql').filter((d) => /^\d+$/.test(d));
  } catch {}
  const newest = majors.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) {
    throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)');
  }
  return `/usr/lib/postgresql/${newest}/bin`;
}

/** Runs a PostgreSQL binary, as the postgres user when we are root (initdb and postgres refuse root). */
async function pgRun(bin: string, args: string[]): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  try {
    const { stdout } = await run(cmd, argv, { cwd: tmpdir() });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${bin} ${args.join(' ')} failed: ${err.stderr || err.message}`, { cause: e });
  }
}

export async function privatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const dir = await mkdtemp(join(tmpdir(), 'herald-pg-'));
  const data = join(dir, 'data');
  if (process.getuid?.() === 0) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await chmod(dir, 0o700);
  const port = await freePort();
  const pgCtl = join(bin, 'pg_ctl');
  const startServer = () =>
    pgRun(pgCtl, [
      '-D',
      data,
      '-w',
      '-t',
      '30',
      '-l',
      join(dir, 'server.log'),
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
      'start',
    ]);
  try {
    await pgRun(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
    await startServer();
    const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    await admin.connect();
    try {
      await admin.query('CREATE DATABASE herald');
    } finally {
      await admin.end();
    }
  } catch (e) {
    await pgRun(pgCtl, ['-D', data, '-m', 'immediate', 'stop']).catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  let running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/herald`,
    port,
    async stop() {
      await pgRun(pgCtl, ['-D', data, '-m', 'fast', '-w', 'stop']);
      running = false;
    },
    async start() {
      await startServer();
      running = true;
    },
    async cleanup() {
      if (running) await pgRun(pgCtl, ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      running = false;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
