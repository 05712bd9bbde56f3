/**
 * Numbered, forward-only migrations (migrations/NNNN_name.sql), applied in order, each in its own
 * transaction, under an advisory lock so that processes starting together apply each one once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from './sql.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
const LOCK_ID = 0x4865_7261; // "Hera"
const UNBOUNDED = { unbounded: true } as const;

export function listMigrations(): { version: number; name: string; sql: string }[] {
  return readdirSync(DIR)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f.slice(5, -4), sql: readFileSync(join(DIR, f), 'utf8') }));
}

/** Applies the migrations not applied yet (those up to `upTo` only: tests of a migration's data step). */
export async function migrate(sql: Sql, upTo = Number.POSITIVE_INFINITY): Promise<number[]> {
  // Under the lock too: two processes starting together on an empty database would otherwise race in
  // CREATE TABLE IF NOT EXISTS (one fails on a duplicate catalog entry instead of finding the table).
  await sql.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.query(`CREATE TABLE IF NOT EXISTS herald_migrations (
      version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  }, UNBOUNDED);
  const applied: number[] = [];
  for (const m of listMigrations().filter((x) => x.version <= upTo)) {
    // Unbounded by the statement timeout: a migration may rewrite a large table, and wait for another
    // process's migration (the advisory lock).
    const done = await sql.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
      const seen = await tx.query('SELECT 1 FROM herald_migrations WHERE version = $1', [m.version]);
      if (seen.length) return false;
      for (const statement of splitStatements(m.sql)) await tx.query(statement);
      await tx.query('INSERT INTO herald_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    }, UNBOUNDED);
    if (done) applied.push(m.version);
  }
  return applied;
}

/**
 * Migrations are statements separated by `;` at the end of a line; a `$$`-quoted body (a function)
 * is one piece whatever it contains.
 */
function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let current = '';
  let quoted = false;
  for (const line of text.split('\n')) {
    if (!quoted && /^\s*--/.test(line)) continue;
    current += `${line}\n`;
    if ((line.match(/\$\$/g) ?? []).length % 2 === 1) quoted = !quoted;
    if (!quoted && /;\s*$/.test(line)) {
      statements.push(current.trim().replace(/;$/, ''));
      current = '';
    }
  }
  if (current.trim()) statements.push(current.trim());
  return statements.filter(Boolean);
}
