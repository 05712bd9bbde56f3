/**
 * PGlite driver: PostgreSQL compiled to WASM, in this process, data in a local folder.
 * One connection: statements run one at a time (PGlite queues them).
 * Durability: PGlite does not fsync, so a committed row survives a crash of this process but not
 * necessarily a power loss (docs/benchmarks.md).
 */
import { PGlite, types } from '@electric-sql/pglite';
import type { Sql, SqlClient } from './sql.ts';

const parsers = { [types.INT8]: (v: string) => Number(v) };

export interface PgliteOpenOptions {
  /** A data directory dumped by `PGlite.dumpDataDir()` to start from, skipping initdb. Default: none. */
  loadDataDir?: Blob;
}

export async function openPglite(dataDir: string | undefined, options: PgliteOpenOptions = {}): Promise<Sql> {
  const db = await PGlite.create({
    parsers,
    ...(dataDir ? { dataDir } : {}),
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
  });
  return pgliteSql(db);
}

/** The SQL port over an open PGlite instance (closing the port closes the instance). */
export function pgliteSql(db: PGlite): Sql {
  const client = (q: Pick<PGlite, 'query'>): SqlClient => ({
    async query<T>(text: string, params?: readonly unknown[]) {
      const r = await q.query<T>(text, params as unknown[] | undefined);
      return r.rows;
    },
  });
  const base = client(db);
  return {
    kind: 'pglite',
    parallelism: 1,
    query: base.query,
    transaction: (fn) => db.transaction((tx) => fn(client(tx))),
    close: () => db.close(),
  };
}
