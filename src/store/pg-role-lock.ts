/**
 * Which processes on one PostgreSQL database may deliver in-app notifications when live frames do
 * not travel between processes (without REDIS_URL; with it, the distributed mode, this lock is not
 * taken: src/wiring.ts). Then a notification that a process's worker delivers in-app is pushed only
 * to that same process's sockets. So on one database:
 * - at most one process holds gateway and worker together (its sockets get every live frame only
 *   if no other process delivers in-app);
 * - a process with worker but no gateway may run only while no gateway+worker process does (its
 *   in-app deliveries would never reach those sockets live); several of them may run together.
 * Processes without the worker role (api, scheduler) take no lock and may be added freely.
 *
 * Enforced with two PostgreSQL advisory locks held on a dedicated session (not a pooled
 * connection) for the life of the process: the gateway+worker process holds both exclusively,
 * each worker-only process holds the second one shared. PostgreSQL releases a session's locks when
 * the session ends, so a process that dies — even by SIGKILL — frees its place as soon as the server
 * sees its connection close (a machine that vanished from the network: when the server's TCP
 * keepalive gives up, or `pg_terminate_backend` on the pid the refusal names). Advisory locks are
 * per database: processes on other databases of the same server are not concerned.
 *
 * If the session is lost while running (PostgreSQL restarted), the locks are taken again when it
 * comes back; if another process took them meanwhile, that is logged as an error (nothing can be
 * refused at that point) and no further attempt is made.
 */
import { hostname } from 'node:os';
import pg from 'pg';

export type LiveRole = 'gateway+worker' | 'worker-only';

/** Advisory lock keys ("heraldG1", "heraldW1" as bigints). */
const GATEWAY_KEY = BigInt.asIntN(64, BigInt(`0x${Buffer.from('heraldG1').toString('hex')}`)).toString();
const WORKER_ONLY_KEY = BigInt.asIntN(64, BigInt(`0x${Buffer.from('heraldW1').toString('hex')}`)).toString();

export interface RoleLock {
  release(): Promise<void>;
}

export interface RoleLockLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RoleLockOptions {
  connectTimeoutMs: number;
  /** How long a conflicting lock may take to go away (a predecessor that just died). Default 3 s. */
  waitMs?: number;
  /** How often a lost session is re-opened. Default 5 s. */
  reconnectMs?: number;
  log: RoleLockLog;
}

/** Another process holds a role this one cannot run beside; the message says what to do. */
export class RoleConflictError extends Error {
  override name = 'RoleConflictError';
}

const WHAT_TO_DO =
  'Run one process with gateway and worker on a database (add api-only and scheduler-only processes ' +
  'freely), or several with worker and no gateway when nobody holds sockets; or set REDIS_URL (the ' +
  'distributed mode: live frames travel between processes) to run gateways and workers anywhere.';

export async function takeRoleLock(url: string, role: LiveRole, options: RoleLockOptions): Promise<RoleLock> {
  const waitUntil = Date.now() + (options.waitMs ?? 3_000);
  let client = await connect(url, options);
  for (;;) {
    const conflict = await tryLock(client, role);
    if (!conflict) break;
    if (Date.now() >= waitUntil) {
      const holders = await describeHolders(client, conflict.key).catch(() => ({ text: 'unknown', pids: [] }));
      await client.end().catch(() => {});
      const gone = holders.pids.length
        ? `; if that process is gone, end its session: SELECT pg_terminate_backend(${holders.pids.join('), pg_terminate_backend(')})`
        : '';
      throw new RoleConflictError(`${conflict.message} (held by ${holders.text}${gone}). ${WHAT_TO_DO}`);
    }
    await sleep(250);
  }

  let released = false;
  let retry: NodeJS.Timeout | null = null;
  const onLost = (err?: Error) => {
    if (released || retry) return;
    options.log.warn(
      { err },
      `the PostgreSQL session that holds this process's ${role} role lock ended; taking it again when PostgreSQL answers`,
    );
    retry = setTimeout(reconnect, options.reconnectMs ?? 5_000);
    retry.unref();
  };
  const reconnect = async () => {
    retry = null;
    if (released) return;
    let next: pg.Client;
    try {
      next = await connect(url, options);
    } catch {
      retry = setTimeout(reconnect, options.reconnectMs ?? 5_000);
      retry.unref();
      return;
    }
    if (released) {
      await next.end().catch(() => {});
      return;
    }
    const conflict = await tryLock(next, role).catch((e: Error) => ({ key: '', message: e.message }));
    if (conflict) {
      await next.end().catch(() => {});
      options.log.error(
        {},
        `could not take the ${role} role lock again: ${conflict.message}; live notifications may not reach ` +
          `every socket until one of the processes is stopped. ${WHAT_TO_DO}`,
      );
      return;
    }
    client = next;
    watch(client);
    options.log.info({}, `the ${role} role lock is held again`);
  };
  const watch = (c: pg.Client) => {
    c.on('error', (e) => onLost(e));
    c.on('end', () => onLost());
  };
  watch(client);

  return {
    async release() {
      released = true;
      if (retry) clearTimeout(retry);
      await client.end().catch(() => {});
    },
  };
}

async function connect(url: string, options: RoleLockOptions): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: options.connectTimeoutMs,
    keepAlive: true,
    // Shown by the refusal a second process gets, so that the operator can find this one.
    application_name: `herald ${hostname()} pid ${process.pid}`.slice(0, 63),
  });
  client.on('error', () => {
    // Before watch(): a failed connect reports through connect() itself.
  });
  await client.connect();
  return client;
}

/** Takes the role's locks; on a conflict, the key held elsewhere and what holding it means. */
async function tryLock(client: pg.Client, role: LiveRole): Promise<{ key: string; message: string } | null> {
  if (role === 'worker-only') {
    const ok = await tryOne(client, 'pg_try_advisory_lock_shared', WORKER_ONLY_KEY);
    return ok
      ? null
      : {
          key: WORKER_ONLY_KEY,
          message:
            'a process with the gateway and worker roles runs on this database: in-app notifications that ' +
            'this worker-only process delivered would never reach its sockets live',
        };
  }
  if (!(await tryOne(client, 'pg_try_advisory_lock', GATEWAY_KEY))) {
    return {
      key: GATEWAY_KEY,
      message:
        'another process with the gateway and worker roles runs on this database: each would push live ' +
        'notifications only to its own sockets, and the other one’s users would miss them',
    };
  }
  if (!(await tryOne(client, 'pg_try_advisory_lock', WORKER_ONLY_KEY))) {
    await client.query('SELECT pg_advisory_unlock($1::bigint)', [GATEWAY_KEY]);
    return {
      key: WORKER_ONLY_KEY,
      message:
        'a process with the worker role and no gateway runs on this database: in-app notifications it ' +
        "delivers would never reach this process's sockets live",
    };
  }
  return null;
}

async function tryOne(client: pg.Client, fn: string, key: string): Promise<boolean> {
  const r = await client.query<{ ok: boolean }>(`SELECT ${fn}($1::bigint) AS ok`, [key]);
  return r.rows[0]?.ok === true;
}

/** The sessions holding `key`, as "herald host pid 123 (PostgreSQL pid 456, since …)". */
async function describeHolders(client: pg.Client, key: string): Promise<{ text: string; pids: number[] }> {
  const k = BigInt.asUintN(64, BigInt(key));
  const r = await client.query<{ pid: number; app: string | null; since: Date | null; addr: string | null }>(
    `SELECT l.pid, a.application_name AS app, a.backend_start AS since, host(a.client_addr) AS addr
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 1 AND l.pid <> pg_backend_pid()`,
    [(k >> 32n).toString(), (k & 0xffffffffn).toString()],
  );
  if (!r.rows.length) return { text: 'a session that has just ended', pids: [] };
  const text = r.rows
    .map(
      (row) =>
        `${row.app || 'an unnamed client'}${row.addr ? ` at ${row.addr}` : ''} (PostgreSQL pid ${row.pid}` +
        `${row.since ? `, since ${row.since.toISOString()}` : ''})`,
    )
    .join(', ');
  return { text, pids: r.rows.map((row) => row.pid) };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
