/**
 * A fresh PostgreSQL database per benchmark run on the local server (127.0.0.1:5432, trust),
 * dropped afterwards, and row counts read straight from it.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const START_POSTGRES = 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {
    // A terminated connection reports through its pending query.
  });
  try {
    await client.connect();
  } catch (cause) {
    throw new Error(
      `PostgreSQL is not reachable at ${url} (${(cause as Error).message}); start it with: ${START_POSTGRES}`,
      {
        cause,
      },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export interface FreshDatabase {
  name: string;
  url: string;
  /** Terminates its connections and drops it (idempotent). */
  drop(): Promise<void>;
}

/** Creates an empty database `herald_bench_<random>`. */
export async function freshDatabase(): Promise<FreshDatabase> {
  const name = `herald_bench_${randomBytes(5).toString('hex')}`;
  await withClient(ADMIN_URL, (c) => c.query(`CREATE DATABASE ${name}`));
  return {
    name,
    url: ADMIN_URL.replace(/\/[^/]*$/, `/${name}`),
    drop: () =>
      withClient(ADMIN_URL, async (c) => {
        await c.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        await c.query(`DROP DATABASE IF EXISTS ${name}`);
      }),
  };
}

/** Runs read-only queries against `url` (one connection). */
export function queryPostgres<T>(
  url: string,
  fn: (q: (text: string, params?: unknown[]) => Promise<any[]>) => Promise<T>,
) {
  return withClient(url, (c) => fn(async (text, params) => (await c.query(text, params)).rows));
}
