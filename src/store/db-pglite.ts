/**
 * PGlite driver: PostgreSQL compiled to WASM, in this process, data in a local folder.
 * One connection: statements run one at a time (PGlite queues them).
 * Durability: PGlite does not fsync, so a committed row survives a crash of this process but not
 * necessarily a power loss (docs/benchmarks.md).
 */
import { PGlite, types } from '@electric-sql/pglite';
import type { Sql, SqlClient } from './sql.ts';

const parsers = { [types.INT8]: (v: string) => Number(v) };

export async function openPglite(dataDir: string | undefined): Promise<Sql> {
  const db = await PGlite.create(dataDir ? { dataDir, parsers } : { parsers });
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
