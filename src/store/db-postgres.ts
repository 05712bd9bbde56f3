/** PostgreSQL driver (node-postgres pool). */
import pg from 'pg';
import type { Sql, SqlClient } from './sql.ts';

pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export async function openPostgres(url: string, poolSize: number): Promise<Sql> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, application_name: 'herald' });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it. Queries report their own errors.
  });
  const c = await pool.connect(); // fail fast at start-up if the server is unreachable
  c.release();
  return {
    kind: 'postgres',
    parallelism: poolSize,
    async query<T>(text: string, params?: readonly unknown[]) {
      const r = await pool.query(text, params as unknown[] | undefined);
      return r.rows as T[];
    },
    async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const out = await fn({
          async query<R>(text: string, params?: readonly unknown[]) {
            return (await client.query(text, params as unknown[] | undefined)).rows as R[];
          },
        });
        await client.query('COMMIT');
        return out;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
