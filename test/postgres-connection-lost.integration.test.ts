/**
 * A PostgreSQL connection the server ends while Herald holds it (PostgreSQL shutting down or
 * restarting, pg_terminate_backend): the transaction that held it fails, the pool carries on, and
 * the process lives — even when the end comes between two statements, when no query is there to
 * receive the error. (It once ended the process: chaos `pg-restart` saw a scheduler die.)
 */
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { openPostgres } from '../src/store/db-postgres.ts';
import { freshPostgresUrl } from './support/databases.ts';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => {});
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('a connection ended between two statements of a transaction fails that transaction, not the process', async () => {
  const db = await freshPostgresUrl();
  cleanup.push(() => db.drop());
  const url = db.url;
  const sql = await openPostgres(url, 2);
  cleanup.push(() => sql.close());
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  cleanup.push(() => admin.end());

  let reached = false;
  const outcome = await sql
    .transaction(async (tx) => {
      const [row] = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await admin.query('SELECT pg_terminate_backend($1)', [row?.pid]);
      // The server's FATAL arrives now, while this transaction runs no statement.
      await sleep(300);
      reached = true;
      await tx.query('SELECT 1');
    })
    .then(
      () => 'committed',
      (e: Error) => e.message,
    );

  expect(reached).toBe(true);
  expect(outcome).not.toBe('committed');
  // The pool replaced the lost connection.
  expect(await sql.query<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
});
