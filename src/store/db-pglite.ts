/**
 * PGlite driver: PostgreSQL compiled to WASM, data in a local folder, running in a thread of its
 * own (pglite-thread.mjs) so that a statement never blocks Herald's event loop: sockets, HTTP and
 * timers go on while the database works, and the embedded deployment uses a second core.
 * One connection: statements run one at a time, and a transaction holds the database until it ends.
 * Durability: PGlite does not fsync, so a committed row survives a crash of this process but not
 * necessarily a power loss (docs/benchmarks.md).
 */
import { Worker } from 'node:worker_threads';
import type { Sql, SqlClient } from './sql.ts';

export interface PgliteOpenOptions {
  /** A data directory dumped by `PGlite.dumpDataDir()` to start from, skipping initdb. Default: none. */
  loadDataDir?: Blob;
}

type Answer = { id: number; rows?: unknown[]; tx?: number; error?: { message: string } & Record<string, unknown> };

/** Opens PGlite in its own thread; `dataDir` undefined means in memory. */
export async function openPglite(dataDir: string | undefined, options: PgliteOpenOptions = {}): Promise<Sql> {
  const worker = new Worker(new URL('./pglite-thread.mjs', import.meta.url));
  const pending = new Map<number, { resolve(a: Answer): void; reject(e: Error): void }>();
  let nextId = 1;
  let dead: Error | null = null;
  const failAll = (e: Error) => {
    dead = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on('message', (a: Answer) => {
    const p = pending.get(a.id);
    if (!p) return;
    pending.delete(a.id);
    if (a.error) p.reject(Object.assign(new Error(a.error.message), a.error));
    else p.resolve(a);
  });
  worker.on('error', (e) => failAll(e));
  worker.on('exit', (code) => failAll(new Error(`the PGlite thread exited (code ${code})`)));
  const call = (msg: Record<string, unknown>): Promise<Answer> => {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ ...msg, id });
    });
  };
  const client = (tx?: number): SqlClient => ({
    async query<T>(text: string, params?: readonly unknown[]) {
      return (await call({ op: 'query', text, params: params ?? [], tx })).rows as T[];
    },
  });

  const loadDataDir = options.loadDataDir ? await options.loadDataDir.arrayBuffer() : undefined;
  try {
    await call({ op: 'open', dataDir, loadDataDir });
  } catch (e) {
    await worker.terminate();
    throw e;
  }
  const base = client();
  return {
    kind: 'pglite',
    parallelism: 1,
    query: base.query,
    async transaction(fn) {
      const { tx } = await call({ op: 'begin' });
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await fn(client(tx));
      } catch (e) {
        await call({ op: 'end', tx, commit: false }).catch(() => {});
        throw e;
      }
      await call({ op: 'end', tx, commit: true });
      return result;
    },
    async close() {
      try {
        await call({ op: 'close' });
      } finally {
        await worker.terminate();
      }
    },
  };
}
