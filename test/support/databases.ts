/**
 * Databases for tests: a fresh PostgreSQL database per call (on the local server, dropped after),
 * a fresh in-memory PGlite store per call (from a migrated template, so no initdb per test), and
 * `forEachStore` to run one suite against both adapters.
 *
 * Integration tests never skip: when PostgreSQL is unreachable, `freshPostgresUrl` throws with the
 * command that starts it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterEach, beforeEach, describe } from 'vitest';
import { listMigrations, migrate } from '../../src/store/migrate.ts';
import type { Sql, SqlClient } from '../../src/store/sql.ts';
import { openEmbeddedStore, openPostgresStore, type SqlStore } from '../../src/store/store-sql.ts';

const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const START_POSTGRES = 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start';

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {
    // A terminated admin connection reports through its pending query.
  });
  try {
    await client.connect();
  } catch (cause) {
    throw new Error(
      `PostgreSQL is not reachable at ${ADMIN_URL} (${(cause as Error).message}). ` +
        `Integration tests need it; start it with: ${START_POSTGRES}`,
      { cause },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Creates an empty database `herald_t_<random>` on the local server; `drop` removes it (idempotent). */
export async function freshPostgresUrl(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `herald_t_${randomBytes(6).toString('hex')}`;
  await withAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = `postgres://postgres@127.0.0.1:5432/${name}`;
  return {
    url,
    drop: () =>
      withAdmin(async (c) => {
        await c.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        await c.query(`DROP DATABASE IF EXISTS ${name}`);
      }),
  };
}

/** The SQL port over a PGlite instance in this thread (only to migrate the template). */
function pgliteSql(db: PGlite): Sql {
  const client = (q: Pick<PGlite, 'query'>): SqlClient => ({
    async query<T>(text: string, params?: readonly unknown[]) {
      return (await q.query<T>(text, params as unknown[] | undefined)).rows;
    },
  });
  return {
    kind: 'pglite',
    parallelism: 1,
    query: client(db).query,
    transaction: (fn) => db.transaction((tx) => fn(client(tx))),
    close: () => db.close(),
  };
}

/** Key of the template: the migrations and the PGlite version (a dump only loads into its own version). */
function templateKey(): string {
  const require = createRequire(import.meta.url);
  const pkg = join(dirname(require.resolve('@electric-sql/pglite')), '..', 'package.json');
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  const hash = createHash('sha256').update(`pglite ${version}\n`);
  for (const m of listMigrations()) hash.update(`${m.version} ${m.name}\n${m.sql}\n`);
  return hash.digest('hex').slice(0, 16);
}

function templateFile(): string {
  return join(tmpdir(), `herald-pglite-template-${templateKey()}.tar`);
}

/** The migrated template: from the file another test process left, or built (initdb, ≈5 s) and left there. */
async function buildTemplate(): Promise<Blob> {
  const file = templateFile();
  const cached = await readFile(file).catch(() => null);
  if (cached) return new Blob([cached]);
  const db = await PGlite.create();
  try {
    await migrate(pgliteSql(db));
    const dump = await db.dumpDataDir('none');
    // Best effort, written aside then renamed so that a concurrent reader never sees half a file.
    const part = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      await writeFile(part, new Uint8Array(await dump.arrayBuffer()));
      await rename(part, file);
    } catch {
      await rm(part, { force: true });
    }
    return dump;
  } finally {
    await db.close();
  }
}

let template: Promise<Blob> | null = null;

/** A fresh, migrated, in-memory embedded store (well under a second: loads the template, no initdb). */
export async function openTestPglite(): Promise<SqlStore> {
  template ??= buildTemplate();
  try {
    return await openEmbeddedStore(null, { loadDataDir: await template });
  } catch (e) {
    // Never let a bad template poison later tests or processes: the next call builds it again.
    template = null;
    await rm(templateFile(), { force: true });
    throw e;
  }
}

export interface OpenedStore {
  store: SqlStore;
  /** Closes the store and throws its database away. */
  cleanup(): Promise<void>;
}

export interface StoreAdapter {
  kind: SqlStore['kind'];
  /** A store on a fresh, empty, migrated database. */
  open(): Promise<OpenedStore>;
}

export const STORE_ADAPTERS: readonly StoreAdapter[] = [
  {
    kind: 'pglite',
    async open() {
      const store = await openTestPglite();
      return { store, cleanup: () => store.close() };
    },
  },
  {
    kind: 'postgres',
    async open() {
      const db = await freshPostgresUrl();
      try {
        const store = await openPostgresStore(db.url, 8);
        return {
          store,
          async cleanup() {
            await store.close();
            await db.drop();
          },
        };
      } catch (e) {
        await db.drop();
        throw e;
      }
    },
  },
];

/**
 * Declares `body` once per adapter, inside `describe('<name> (<kind>)')`, with a fresh store per
 * test: `store()` returns the current test's store.
 */
export function forEachStore(name: string, body: (ctx: { kind: SqlStore['kind']; store(): SqlStore }) => void): void {
  describe.each(STORE_ADAPTERS)(`${name} ($kind)`, (adapter) => {
    let current: OpenedStore | null = null;
    beforeEach(async () => {
      current = await adapter.open();
    });
    afterEach(async () => {
      const c = current;
      current = null;
      await c?.cleanup();
    });
    body({
      kind: adapter.kind,
      store: () => {
        if (!current) throw new Error('store() is only available inside a test');
        return current.store;
      },
    });
  });
}
