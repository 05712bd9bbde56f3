/**
 * A private redis-server per benchmark run, on a free loopback port, keeping nothing on disk
 * (`--save "" --appendonly no`): a run never sees another run's keys and never flushes anybody
 * else's. Its pid is the child's, so its CPU time can be read from /proc. (Tests have their own
 * launcher in test/support/redis.ts; benchmarks do not import from test/.)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './herald-process.ts';
import { sleep } from './stats.ts';

export interface BenchRedis {
  url: string;
  /** redis-server's pid (INFO server's process_id). */
  pid: number;
  /** Stops the server (SIGKILL) and removes its folder; idempotent. */
  cleanup(): Promise<void>;
}

async function ping(port: number): Promise<number | null> {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  r.on('error', () => {
    // A server not up yet refuses the connection: connect() reports it.
  });
  try {
    await r.connect();
    const info = await r.info('server');
    return Number(/^process_id:(\d+)/m.exec(info)?.[1] ?? 0);
  } catch {
    return null;
  } finally {
    r.disconnect();
  }
}

export async function startBenchRedis(): Promise<BenchRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'herald-bench-redis-'));
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  let spawnError: Error | null = null;
  child.on('error', (e) => {
    spawnError = e;
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const cleanup = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 10_000;
  for (;;) {
    const pid = await ping(port);
    if (pid) return { url: `redis://127.0.0.1:${port}`, pid, cleanup };
    if (spawnError || Date.now() > until) {
      await cleanup();
      throw new Error(
        `could not start redis-server on port ${port} (apt-get install redis-server)${spawnError ? `: ${(spawnError as Error).message}` : ''}`,
      );
    }
    await sleep(50);
  }
}
