/**
 * Redis for tests: the machine's shared server (a fresh key prefix per call, so tests never see each
 * other's keys), a private `redis-server` on a free loopback port (for tests that flush, stop or
 * restart it), and a private three-node Redis Cluster on loopback ports.
 *
 * Integration tests never skip: when Redis is unreachable or `redis-server` is missing, these throw
 * with the command that fixes it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';

const run = promisify(execFile);
export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';
const START_REDIS =
  'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log';

/** A key prefix no other test uses (`t<hex>:`). */
export function freshPrefix(): string {
  return `t${randomBytes(5).toString('hex')}:`;
}

/** The shared server's URL, after checking that it answers. */
export async function sharedRedisUrl(): Promise<string> {
  const r = new Redis(SHARED_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2_000 });
  try {
    await r.connect();
    await r.ping();
  } catch (cause) {
    throw new Error(`Redis is not reachable at ${SHARED_REDIS_URL}; start it with: ${START_REDIS}`, { cause });
  } finally {
    r.disconnect();
  }
  return SHARED_REDIS_URL;
}

/** A port nobody listens on right now (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    // A server not up yet refuses the connection: reported by connect(), not as an unhandled event.
    r.on('error', () => {});
    try {
      await r.connect();
      await r.ping();
      return;
    } catch (e) {
      if (Date.now() > until)
        throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`, { cause: e });
    } finally {
      r.disconnect();
    }
    await new Promise((res) => setTimeout(res, 50));
  }
}

function startServer(port: number, dir: string, extra: string[] = []): ChildProcess {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra],
    { stdio: 'ignore' },
  );
  child.on('error', () => {
    // Reported by waitForPing (ENOENT: redis-server is not installed).
  });
  return child;
}

async function stopServer(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** A redis-server of this test's own, on a free port: flush it, kill it, start it again on the same port. */
export interface PrivateRedis {
  url: string;
  port: number;
  /** Stops the server (SIGKILL with `kill`); it keeps nothing on disk. */
  stop(options?: { kill?: boolean }): Promise<void>;
  /** Starts it again on the same port (empty). */
  start(): Promise<void>;
  /** A client of its own (closed by `cleanup`). */
  client(): Redis;
  cleanup(): Promise<void>;
}

export async function privateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'herald-redis-'));
  let child = startServer(port, dir);
  await waitForPing(port).catch((e: unknown) => {
    throw new Error(`could not start redis-server (apt-get install redis-server): ${(e as Error).message}`, {
      cause: e,
    });
  });
  const clients: Redis[] = [];
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop(options = {}) {
      await stopServer(child, options.kill ? 'SIGKILL' : 'SIGTERM');
    },
    async start() {
      child = startServer(port, dir);
      await waitForPing(port);
    },
    client() {
      const c = new Redis({ port, host: '127.0.0.1' });
      clients.push(c);
      return c;
    },
    async cleanup() {
      for (const c of clients) c.disconnect();
      await stopServer(child, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A three-node Redis Cluster (no replicas) on free loopback ports. */
export interface PrivateCluster {
  /** `redis://127.0.0.1:p1,redis://127.0.0.1:p2,…`: what REDIS_URL takes for a cluster. */
  url: string;
  nodes: { host: string; port: number }[];
  client(): Cluster;
  cleanup(): Promise<void>;
}

export async function privateCluster(): Promise<PrivateCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'herald-cluster-'));
  const ports: number[] = [];
  while (ports.length < 3) {
    const p = await freePort();
    // The cluster bus listens on port + 10000: both must be free and below 65536.
    if (p + 10_000 < 65_536 && !ports.includes(p)) ports.push(p);
  }
  const children: ChildProcess[] = [];
  for (const port of ports) {
    const nodeDir = join(dir, String(port));
    await run('mkdir', ['-p', nodeDir]);
    children.push(
      startServer(port, nodeDir, ['--cluster-enabled', 'yes', '--cluster-config-file', join(nodeDir, 'nodes.conf')]),
    );
  }
  const cleanupAll = async () => {
    for (const c of children) await stopServer(c, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) await waitForPing(port);
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    // Every node must agree that all slots are served before clients use it.
    const until = Date.now() + 15_000;
    for (;;) {
      const states = await Promise.all(
        ports.map(async (p) => (await run('redis-cli', ['-p', String(p), 'cluster', 'info'])).stdout),
      );
      if (states.every((s) => s.includes('cluster_state:ok'))) break;
      if (Date.now() > until) throw new Error(`the test cluster on ${ports.join(', ')} did not become ok`);
      await new Promise((res) => setTimeout(res, 100));
    }
  } catch (e) {
    await cleanupAll();
    throw e;
  }
  const nodes = ports.map((port) => ({ host: '127.0.0.1', port }));
  const clients: Cluster[] = [];
  return {
    url: ports.map((p) => `redis://127.0.0.1:${p}`).join(','),
    nodes,
    client() {
      const c = new Cluster(nodes);
      clients.push(c);
      return c;
    },
    async cleanup() {
      for (const c of clients) c.disconnect();
      await cleanupAll();
    },
  };
}
