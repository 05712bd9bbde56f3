/**
 * PGlite driver: PostgreSQL compiled to WASM, in this process, data in a local folder.
 * One connection: statements run one at a time (PGlite queues them), on this thread: while one
 * runs, nothing else of Herald does. Each statement and transaction therefore starts only after
 * the event loop has had a turn (`setImmediate`): a chain of statements that follow each other in
 * promise callbacks (a worker lane taking batch after batch) would otherwise keep the loop in
 * microtasks and starve socket I/O — accepted requests waited seconds for their answer.
 * Durability: PGlite does not fsync, so a committed row survives a crash of this process but not
 * necessarily a power loss (docs/benchmarks.md).
 */
import { setImmediate as turn } from 'node:timers/promises';
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
  const inTx = client(db);
  return {
    kind: 'pglite',
    parallelism: 1,
    async query<T>(text: string, params?: readonly unknown[]) {
      await turn();
      return inTx.query<T>(text, params);
    },
    async transaction(fn) {
      await turn();
      return db.transaction((tx) => fn(client(tx)));
    },
    close: () => db.close(),
  };
}
