/**
 * PostgreSQL waits are bounded: a server that accepts TCP and never answers fails start-up within the
 * connect timeout (naming DATABASE_URL, password redacted); a statement longer than the statement
 * timeout fails with an error that says so and the pool stays usable; a server that stops answering
 * mid-query costs one connection, not the pool; migrations are not bound by the statement timeout.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { NO_ANSWER, STATEMENT_TIMEOUT } from '../src/store/db-postgres.ts';
import { openPostgresStore, type SqlStore } from '../src/store/store-sql.ts';
import { freshPostgresUrl } from './support/databases.ts';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A TCP server on a random port; `silent` accepts connections and never sends a byte. */
async function listen(
  onConnection: (s: Socket) => void,
): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { server, port: (server.address() as { port: number }).port, sockets };
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: unknown }> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

it('fails start-up within the connect timeout when the server accepts TCP and never answers', async () => {
  // Reads (and ignores) what the client sends; closes when the client does.
  const silent = await listen((s) => {
    s.resume();
    s.on('end', () => s.destroy());
  });
  const url = `postgres://herald:s3cret-pw@127.0.0.1:${silent.port}/herald`;
  const started = Date.now();
  const error = await rejection(openPostgresStore(url, 4, { connectTimeoutMs: 600, statementTimeoutMs: 1_000 }));
  const elapsed = Date.now() - started;
  expect(elapsed).toBeGreaterThanOrEqual(500);
  expect(elapsed).toBeLessThan(600 + 2_500);
  expect(error.message).toContain(`DATABASE_URL=postgres://herald:***@127.0.0.1:${silent.port}/herald`);
  expect(error.message).toContain('HERALD_PG_CONNECT_TIMEOUT_MS');
  expect(error.message).not.toContain('s3cret-pw');
  // The connection it opened was closed by Herald, not left behind.
  await expect.poll(() => silent.sockets.size, { timeout: 3_000 }).toBe(0);
});

it('names DATABASE_URL, password redacted, when nothing listens', async () => {
  const closed = await listen(() => {});
  const port = closed.port;
  await new Promise((resolve) => closed.server.close(resolve));
  const error = await rejection(
    openPostgresStore(`postgresql://app:hunter2@127.0.0.1:${port}/x?password=hunter2`, 1, {
      connectTimeoutMs: 2_000,
      statementTimeoutMs: 1_000,
    }),
  );
  expect(error.message).toContain('DATABASE_URL=postgresql://app:***@127.0.0.1');
  expect(error.message).toContain('password=***');
  expect(error.message).not.toContain('hunter2');
  expect(error.message).toMatch(/ECONNREFUSED|connect/);
});

async function timedStore(statementTimeoutMs: number, url?: string): Promise<SqlStore> {
  const db = await freshPostgresUrl();
  const store = await openPostgresStore(url ?? db.url, 3, { connectTimeoutMs: 5_000, statementTimeoutMs });
  cleanup.push(async () => {
    await store.close();
    await db.drop();
  });
  return store;
}

it('cancels a statement longer than the statement timeout with a clear error, and the pool recovers', async () => {
  const store = await timedStore(500);
  const [setting] = await store.sql.query<{ statement_timeout: string }>('SHOW statement_timeout');
  expect(setting?.statement_timeout).toBe('500ms');

  // More slow statements than the pool has connections: each is cut, none hangs.
  const started = Date.now();
  const errors = await Promise.all(Array.from({ length: 5 }, () => rejection(store.sql.query('SELECT pg_sleep(5)'))));
  expect(Date.now() - started).toBeLessThan(4_000);
  for (const e of errors) {
    expect(e.code).toBe(STATEMENT_TIMEOUT);
    expect(e.message).toContain('HERALD_PG_STATEMENT_TIMEOUT_MS (500 ms)');
    expect(e.message).toContain('SELECT pg_sleep(5)');
  }

  // In a transaction: rolled back, and the connection serves the next one.
  const tx = await rejection(
    store.sql.transaction(async (q) => {
      await q.query('CREATE TABLE timeout_probe (x int)');
      await q.query('SELECT pg_sleep(5)');
    }),
  );
  expect(tx.code).toBe(STATEMENT_TIMEOUT);
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      store.sql.transaction((q) => q.query<{ n: number }>('SELECT $1::int AS n', [i])),
    ),
  );
  expect(results.map((r) => r[0]?.n)).toEqual([0, 1, 2, 3, 4, 5]);
  const [probe] = await store.sql.query<{ t: string | null }>(`SELECT to_regclass('timeout_probe')::text AS t`);
  expect(probe?.t).toBeNull();
  // Statements within the limit are unaffected.
  expect(await store.sql.query('SELECT pg_sleep(0.2)')).toHaveLength(1);
});

it('lets an unbounded transaction (migrations) run past the statement timeout', async () => {
  // openPostgresStore migrated the database with this timeout in force.
  const store = await timedStore(300);
  const [migrated] = await store.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM herald_migrations');
  expect(migrated?.n).toBeGreaterThan(0);
  const out = await store.sql.transaction(
    async (q) => {
      await q.query('SELECT pg_sleep(0.8)');
      return q.query<{ statement_timeout: string }>('SHOW statement_timeout');
    },
    { unbounded: true },
  );
  expect(out[0]?.statement_timeout).toBe('0');
  // The limit is back for the next transaction on that connection.
  const [after] = await store.sql.transaction((q) => q.query<{ statement_timeout: string }>('SHOW statement_timeout'));
  expect(after?.statement_timeout).toBe('300ms');
});

it('drops a connection whose server stops answering mid-query, and serves the next query on a new one', async () => {
  const db = await freshPostgresUrl();
  // A proxy to the real server that can stop passing the server's answers on.
  let frozen = false;
  const proxy = await listen((client) => {
    const upstream = tcpConnect(5432, '127.0.0.1');
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.on('data', (d) => {
      if (!frozen) client.write(d);
    });
  });
  const viaProxy = db.url.replace(':5432/', `:${proxy.port}/`);
  const store = await openPostgresStore(viaProxy, 2, { connectTimeoutMs: 5_000, statementTimeoutMs: 400 });
  cleanup.push(async () => {
    await store.close();
    await db.drop();
  });
  // Two connections open and idle in the pool (new ones could not be made through a frozen proxy).
  await Promise.all([1, 2].map(() => store.sql.transaction((q) => q.query('SELECT pg_sleep(0.1)'))));
  expect(proxy.sockets.size).toBe(2);

  frozen = true;
  const started = Date.now();
  const error = await rejection(store.sql.transaction((q) => q.query('SELECT 1')));
  const elapsed = Date.now() - started;
  expect(error.code).toBe(NO_ANSWER);
  expect(error.message).toContain('did not answer within 1400 ms');
  expect(elapsed).toBeGreaterThanOrEqual(1_300);
  expect(elapsed).toBeLessThan(1_400 + 2_500);
  const plain = await rejection(store.sql.query('SELECT 2'));
  expect(plain.code).toBe(NO_ANSWER);

  // Both were dropped, not returned to the pool.
  await expect.poll(() => proxy.sockets.size, { timeout: 3_000 }).toBe(0);

  frozen = false;
  const [row] = await store.sql.query<{ n: number }>('SELECT 3 AS n');
  expect(row?.n).toBe(3);
  expect(await store.sql.transaction((q) => q.query('SELECT 4'))).toHaveLength(1);
});
