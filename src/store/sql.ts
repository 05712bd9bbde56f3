/**
 * The SQL port the store and the queue-table bus are written against: PostgreSQL's dialect,
 * whether it runs as PGlite (WASM, in-process) or as a PostgreSQL server.
 */
export interface SqlClient {
  query<T = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface TransactionOptions {
  /**
   * No statement timeout inside this transaction (schema migrations, which may rewrite a large table
   * or wait for another process's migration). Default false: the store's statement timeout holds.
   */
  unbounded?: boolean;
}

export interface Sql extends SqlClient {
  readonly kind: 'pglite' | 'postgres';
  /** Transactions that may usefully run at once. */
  readonly parallelism: number;
  /** Runs `fn` in one transaction (READ COMMITTED); rolls back if it throws. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>, options?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
}
