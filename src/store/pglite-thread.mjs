// The embedded database's own thread: PGlite (PostgreSQL compiled to WASM) runs here, so that a
// statement never blocks Herald's event loop (sockets, HTTP, timers) while it executes.
// Plain JavaScript: a worker thread starts without the TypeScript loader of its parent.
// The protocol (requests from db-pglite.ts, one answer each, by id):
//   { id, op: 'open', dataDir?, loadDataDir? }   → { id }
//   { id, op: 'query', text, params, tx? }        → { id, rows }
//   { id, op: 'begin' }                           → { id, tx } once the transaction holds the database
//   { id, op: 'end', tx, commit }                 → { id } once it has committed or rolled back
//   { id, op: 'close' }                           → { id }
// A failure answers { id, error: { message, code, detail, ... } }.
import { parentPort } from 'node:worker_threads';
import { PGlite, types } from '@electric-sql/pglite';

const port = parentPort;
if (!port) throw new Error('pglite-thread.mjs runs as a worker thread');

/** @type {PGlite | null} */
let db = null;
/** Open transactions: the PGlite transaction handle, and how to end it. */
const txs = new Map();
let nextTx = 1;

function fail(id, e) {
  const err = e instanceof Error ? e : new Error(String(e));
  const fields = {};
  for (const k of ['code', 'detail', 'hint', 'position', 'schema', 'table', 'column', 'constraint', 'severity']) {
    if (err[k] !== undefined) fields[k] = err[k];
  }
  port.postMessage({ id, error: { message: err.message, ...fields } });
}

async function handle(m) {
  switch (m.op) {
    case 'open':
      db = await PGlite.create({
        parsers: { [types.INT8]: (v) => Number(v) },
        ...(m.dataDir ? { dataDir: m.dataDir } : {}),
        ...(m.loadDataDir ? { loadDataDir: new Blob([m.loadDataDir]) } : {}),
      });
      port.postMessage({ id: m.id });
      return;
    case 'query': {
      const q = m.tx === undefined ? db : txs.get(m.tx)?.handle;
      if (!q) throw new Error(`transaction ${m.tx} is not open`);
      const r = await q.query(m.text, m.params);
      port.postMessage({ id: m.id, rows: r.rows });
      return;
    }
    case 'begin': {
      const tx = nextTx++;
      let end;
      const ended = new Promise((resolve) => {
        end = resolve;
      });
      const entry = { handle: null, end };
      txs.set(tx, entry);
      // PGlite holds its lock for the whole callback: other statements wait until 'end'.
      db.transaction(async (handle) => {
        entry.handle = handle;
        port.postMessage({ id: m.id, tx });
        const { commit } = await ended;
        if (!commit) await handle.rollback();
      })
        .then(
          () => port.postMessage({ id: entry.endId }),
          (e) => (entry.endId === undefined ? fail(m.id, e) : fail(entry.endId, e)),
        )
        .finally(() => txs.delete(tx));
      return;
    }
    case 'end': {
      const entry = txs.get(m.tx);
      if (!entry) throw new Error(`transaction ${m.tx} is not open`);
      entry.endId = m.id;
      entry.end({ commit: m.commit });
      return;
    }
    case 'close':
      await db?.close();
      db = null;
      port.postMessage({ id: m.id });
      return;
    default:
      throw new Error(`unknown op ${m.op}`);
  }
}

port.on('message', (m) => {
  handle(m).catch((e) => fail(m.id, e));
});
