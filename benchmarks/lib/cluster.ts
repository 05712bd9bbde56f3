/**
 * Herald in the distributed mode for benchmarks: N child processes with given roles, each on its
 * own free port, on one fresh PostgreSQL database and one private redis-server (lib/redis.ts),
 * with the same secrets (API key, webhook secret, HERALD_JWT_SECRET = the real-time benches'
 * one, so clients sign tokens every gateway accepts).
 *
 * Guarantees: start() returns only when every process answers /readyz (the first one is started
 * alone, so that it runs the migrations; the others then start together); cleanup() SIGKILLs every
 * process it started and redis-server, waits for their exit, drops the database, and throws if
 * one of its pids is still alive; if the bench process itself exits or is interrupted (Ctrl-C)
 * first, the children are SIGKILLed on the way out (the database then stays: drop herald_bench_*).
 * CPU is read per process from /proc (lib/cpu.ts): each Herald process, the run database's
 * PostgreSQL backends, redis-server.
 */
import { cpuBetween, cpuByPid, processCpuMs } from './cpu.ts';
import { BENCH_API_KEY, type HeraldProcess, startHeraldProcess } from './herald-process.ts';
import { ADMIN_URL, type FreshDatabase, freshDatabase, queryPostgres } from './postgres.ts';
import { type BenchRedis, startBenchRedis } from './redis.ts';
import { BENCH_JWT_SECRET } from './user-token.ts';

export interface MemberSpec {
  /** Unique within the cluster, e.g. `api-1`; names the process in tables. */
  name: string;
  /** Comma-separated roles (`api`, `worker`, `gateway`, `scheduler`). */
  roles: string;
  /** Extra environment for this process only (e.g. the inspector's NODE_OPTIONS). */
  env?: Record<string, string>;
}

export interface Member extends MemberSpec {
  herald: HeraldProcess;
}

export interface CpuSnapshot {
  /** CPU ms of each Herald process so far, by member name. */
  processes: Map<string, number>;
  /** CPU ms of each of the run database's backends, by pid. */
  backends: Map<number, number>;
  redis: number;
}

export interface CpuUsed {
  /** CPU ms each Herald process used between the two snapshots, by member name. */
  processes: Record<string, number>;
  /** The run database's backends (a backend new in the second snapshot counts from 0). */
  postgres: number;
  redis: number;
}

export interface HeraldCluster {
  db: FreshDatabase;
  redis: BenchRedis;
  members: Member[];
  /** The members that have `role` among theirs, in start order. */
  withRole(role: string): Member[];
  /** Starts more processes on the same database and Redis (e.g. workers once work is queued). */
  add(specs: readonly MemberSpec[]): Promise<Member[]>;
  cpu(): Promise<CpuSnapshot>;
  /** Graceful stop (SIGTERM) of every process, in parallel. */
  stop(): Promise<void>;
  /** Everything killed and thrown away; throws if a process outlived it. */
  cleanup(): Promise<void>;
  /** The last log lines of every process, for error messages. */
  logTails(): string;
}

export interface ClusterOptions {
  /** Environment for every process (e.g. from --env). */
  env?: Record<string, string>;
  /** Write a V8 CPU profile of every process into this folder (--cpu-prof; one file per pid). */
  cpuProfDir?: string | undefined;
  log?: (message: string) => void;
}

/** CPU used between two snapshots. */
export function cpuUsed(before: CpuSnapshot, after: CpuSnapshot): CpuUsed {
  const processes: Record<string, number> = {};
  for (const [name, ms] of after.processes) processes[name] = ms - (before.processes.get(name) ?? 0);
  return { processes, postgres: cpuBetween(before.backends, after.backends), redis: after.redis - before.redis };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Pids of children still to kill if the bench exits without cleanup (one set for all clusters). */
const live = new Set<number>();
let hooked = false;
function killLiveOnExit() {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const pid of live) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
}

export async function startCluster(specs: readonly MemberSpec[], options: ClusterOptions = {}): Promise<HeraldCluster> {
  if (!specs.length) throw new Error('a cluster needs at least one process');
  killLiveOnExit();
  const log = options.log ?? (() => {});
  const db = await freshDatabase();
  let redis: BenchRedis;
  try {
    redis = await startBenchRedis();
  } catch (e) {
    await db.drop();
    throw e;
  }
  live.add(redis.pid);
  const members: Member[] = [];

  const startOne = async (spec: MemberSpec): Promise<Member> => {
    if (members.some((m) => m.name === spec.name)) throw new Error(`two processes named ${spec.name}`);
    const herald = await startHeraldProcess({
      store: 'postgres',
      database: db,
      roles: spec.roles,
      ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
      env: { ...options.env, HERALD_JWT_SECRET: BENCH_JWT_SECRET, REDIS_URL: redis.url, ...spec.env },
    });
    live.add(herald.pid);
    const member = { ...spec, herald };
    members.push(member);
    return member;
  };
  const add = async (more: readonly MemberSpec[]) => {
    const started = await Promise.allSettled(more.map(startOne));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    const added = started.map((s) => (s as PromiseFulfilledResult<Member>).value);
    log(`started ${added.map((m) => `${m.name} (--role ${m.roles}, pid ${m.herald.pid})`).join(', ')}`);
    return added;
  };

  const cleanup = async () => {
    await Promise.all(members.map((m) => m.herald.cleanup()));
    await redis.cleanup();
    await db.drop().catch((e: unknown) => log(`could not drop ${db.name}: ${(e as Error).message}`));
    const outlived = [...members.map((m) => m.herald.pid), redis.pid].filter(alive);
    for (const m of members) live.delete(m.herald.pid);
    live.delete(redis.pid);
    if (outlived.length) throw new Error(`processes outlived the cluster's cleanup: ${outlived.join(', ')}`);
  };

  const cluster: HeraldCluster = {
    db,
    redis,
    members,
    withRole: (role) => members.filter((m) => m.roles.split(',').includes(role)),
    add,
    async cpu() {
      const pids = await queryPostgres(ADMIN_URL, (q) =>
        q('SELECT pid FROM pg_stat_activity WHERE datname = $1', [db.name]).then((rows) =>
          rows.map((r) => r.pid as number),
        ),
      );
      const [own, backends, r] = await Promise.all([
        Promise.all(members.map(async (m) => [m.name, await processCpuMs(m.herald.pid)] as const)),
        cpuByPid(pids),
        processCpuMs(redis.pid),
      ]);
      return { processes: new Map(own), backends, redis: r };
    },
    stop: async () => {
      await Promise.all(members.map((m) => m.herald.stop()));
    },
    cleanup,
    logTails: () => members.map((m) => `--- ${m.name} (--role ${m.roles})\n${m.herald.logTail()}`).join('\n'),
  };

  try {
    const [first, ...rest] = specs;
    await add([first as MemberSpec]);
    if (rest.length) await add(rest);
  } catch (e) {
    const tails = cluster.logTails();
    await cleanup();
    throw new Error(`the cluster did not start: ${(e as Error).message}\n${tails}`, { cause: e });
  }
  return cluster;
}

/** Sum of a Prometheus counter's samples whose labels contain every `label="value"` given. */
export async function counterSum(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${BENCH_API_KEY}` } }).then(
    (r) => (r.ok ? r.text() : ''),
    () => '',
  );
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    const set = m[1] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(m[2]);
  }
  return sum;
}

/** The bus the cluster's processes use (HERALD_BUS from --env; Herald's default is the queue table). */
export function busOf(env: Record<string, string>): string {
  return env.HERALD_BUS ?? 'queue-table';
}
