/**
 * PostgreSQL driver (node-postgres pool), with every wait bounded:
 *
 * - A new connection must be ready for queries within `connectTimeoutMs`
 *   (HERALD_PG_CONNECT_TIMEOUT_MS): a server that accepts TCP and never answers fails start-up
 *   after that, with an error naming DATABASE_URL (password redacted), instead of hanging.
 * - Each connection runs with `statement_timeout = statementTimeoutMs`
 *   (HERALD_PG_STATEMENT_TIMEOUT_MS): the server cancels a longer statement, the caller gets an
 *   error that says so, and the connection stays usable (a transaction is rolled back). A client-side
 *   timer a second longer catches a server that stops answering altogether; that connection is
 *   dropped, never returned to the pool.
 * - Transactions opened with `{ unbounded: true }` (schema migrations, which may rewrite a large
 *   table or wait for another process's migration) run without either limit.
 *
 * Waiting for a free connection of a busy pool is not bounded here: statements are, so one frees up.
 */
import pg from 'pg';
import { redact } from '../redact.ts';
import type { Sql, SqlClient, TransactionOptions } from './sql.ts';

pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export interface PostgresTimeouts {
  /** HERALD_PG_CONNECT_TIMEOUT_MS: connecting, TLS and authentication of one connection. Default 10 s. */
  connectTimeoutMs: number;
  /** HERALD_PG_STATEMENT_TIMEOUT_MS: longest statement. Default 30 s. */
  statementTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: PostgresTimeouts = { connectTimeoutMs: 10_000, statementTimeoutMs: 30_000 };

/** How much longer than the statement timeout the client waits for an answer before dropping the connection. */
const CLIENT_MARGIN_MS = 1_000;
/** "No limit" for node-postgres's per-query timer (0 would fall back to the connection's). */
const NO_LIMIT_MS = 2 ** 31 - 1;

/** Error codes of the timeouts: PostgreSQL's query_canceled, and the one for a server gone silent. */
export const STATEMENT_TIMEOUT = '57014';
export const NO_ANSWER = 'HERALD_PG_NO_ANSWER';

export async function openPostgres(
  url: string,
  poolSize: number,
  timeouts: PostgresTimeouts = DEFAULT_TIMEOUTS,
): Promise<Sql> {
  const { connectTimeoutMs, statementTimeoutMs } = timeouts;
  const clientTimeoutMs = statementTimeoutMs + CLIENT_MARGIN_MS;
  // The connect timeout is the client's own (from connecting until ready for queries), not the pool's
  // option of that name, which would also fail callers waiting for a busy pool's next free connection.
  class TimedClient extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis: connectTimeoutMs });
    }
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    application_name: 'herald',
    Client: TimedClient,
    statement_timeout: statementTimeoutMs,
    query_timeout: clientTimeoutMs,
  });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it. Queries report their own errors.
  });
  try {
    const c = await pool.connect(); // fail fast at start-up if the server is unreachable
    c.release();
  } catch (e) {
    await pool.end().catch(() => {});
    throw connectError(url, connectTimeoutMs, e as Error);
  }
  const explain = (e: unknown, text: string) => explainError(e, text, statementTimeoutMs, clientTimeoutMs);
  return {
    kind: 'postgres',
    parallelism: poolSize,
    async query<T>(text: string, params?: readonly unknown[]) {
      try {
        const r = await pool.query(text, params as unknown[] | undefined);
        return r.rows as T[];
      } catch (e) {
        // (pool.query drops a connection whose query failed: a silent server's included.)
        throw explain(e, text);
      }
    },
    async transaction<T>(fn: (tx: SqlClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
      const client = await pool.connect();
      const perQuery = options.unbounded ? NO_LIMIT_MS : undefined;
      const run = async (text: string, params?: readonly unknown[]) => {
        try {
          // query_timeout per query is node-postgres's, missing from its types.
          const query = { text, values: params as unknown[] | undefined, query_timeout: perQuery } as pg.QueryConfig;
          return await client.query(query);
        } catch (e) {
          throw explain(e, text);
        }
      };
      // Set when the connection can no longer be trusted; release(error) closes it instead of pooling it.
      let broken: Error | undefined;
      // While it is checked out, the pool does not listen for the client's errors: a connection the
      // server ends between two statements (PostgreSQL shutting down, pg_terminate_backend) would
      // emit an 'error' nobody handles and end the process. The next statement fails instead.
      const lost = (e: Error) => {
        broken = e;
      };
      client.on('error', lost);
      try {
        await run('BEGIN');
        if (options.unbounded) await run('SET LOCAL statement_timeout = 0');
        const out = await fn({
          async query<R>(text: string, params?: readonly unknown[]) {
            return (await run(text, params)).rows as R[];
          },
        });
        await run('COMMIT');
        return out;
      } catch (e) {
        // A silent server: the ROLLBACK would wait behind the unanswered statement. Closing the
        // connection rolls the transaction back.
        if ((e as { code?: unknown }).code === NO_ANSWER) broken = e as Error;
        else await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
        throw e;
      } finally {
        client.removeListener('error', lost);
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}

/** Timeouts as errors that say which limit was hit and by what; other errors unchanged. */
function explainError(e: unknown, text: string, statementTimeoutMs: number, clientTimeoutMs: number): unknown {
  const err = e as Error & { code?: unknown };
  const statement = text.replace(/\s+/g, ' ').trim().slice(0, 80);
  if (err.code === STATEMENT_TIMEOUT && /statement timeout/.test(err.message)) {
    return Object.assign(
      new Error(
        `PostgreSQL cancelled a statement that ran longer than HERALD_PG_STATEMENT_TIMEOUT_MS (${statementTimeoutMs} ms): ${statement}`,
        { cause: e },
      ),
      { code: STATEMENT_TIMEOUT },
    );
  }
  if (err.message === 'Query read timeout') {
    return Object.assign(
      new Error(
        `PostgreSQL did not answer within ${clientTimeoutMs} ms (HERALD_PG_STATEMENT_TIMEOUT_MS + ${CLIENT_MARGIN_MS} ms); ` +
          `the connection was dropped: ${statement}`,
        { cause: e },
      ),
      { code: NO_ANSWER },
    );
  }
  return e;
}

function connectError(url: string, connectTimeoutMs: number, e: Error): Error {
  const timedOut = /timeout/i.test(e.message) || /timeout/i.test(String((e.cause as Error | undefined)?.message));
  const why = timedOut
    ? `no answer within HERALD_PG_CONNECT_TIMEOUT_MS (${connectTimeoutMs} ms)`
    : e.message || String((e as { code?: unknown }).code ?? 'unknown error');
  return Object.assign(
    new Error(`could not connect to PostgreSQL at DATABASE_URL=${redact(url, { asUrl: true })}: ${why}`, { cause: e }),
    { reason: why, code: timedOut ? 'ETIMEDOUT' : (e as { code?: unknown }).code },
  );
}
