/**
 * Rolling deploys: while a new release's first process applies its migrations, processes of the
 * previous release keep running on the same database and keep calling the SQL functions and tables
 * they know. So from migration 0020 on, a migration only adds: a changed function gets a new,
 * versioned name (`herald_take_v2`) that only the new code calls, and the old name stays for the
 * processes still running it; nothing is dropped, replaced or renamed in place. A migration that
 * must remove something (a function no release still calls) says so on a line
 * `-- rolling-deploy: <why the releases still running do not need it>`, and docs/upgrading.md
 * names it. This test reads the migrations' text; the rule is in docs/upgrading.md.
 */
import { describe, expect, it } from 'vitest';
import { listMigrations } from '../src/store/migrate.ts';

/** Migrations before this one were applied with every process stopped (docs/upgrading.md). */
const FIRST_ROLLING = 20;

const IN_PLACE = [
  /\bCREATE\s+OR\s+REPLACE\s+(FUNCTION|VIEW|PROCEDURE)\b/i,
  /\bDROP\s+(FUNCTION|TABLE|VIEW|INDEX|PROCEDURE|TYPE)\b/i,
  /\bALTER\s+(FUNCTION|TABLE|VIEW|INDEX)\s+\S+\s+RENAME\b/i,
  /\bALTER\s+TABLE\s+\S+\s+(DROP|ALTER)\s+(COLUMN\s+)?/i,
];

/** The migration's statements without its comments. */
function code(sql: string): string {
  return sql.replace(/--[^\n]*/g, '');
}

describe('migrations keep a rolling deploy working', () => {
  const rolling = listMigrations().filter((m) => m.version >= FIRST_ROLLING);

  it('has migrations under the rule (this test would pass vacuously otherwise)', () => {
    expect(rolling.length).toBeGreaterThan(0);
  });

  it.each(rolling.map((m) => [`${String(m.version).padStart(4, '0')}_${m.name}`, m.sql]))(
    '%s only adds, or says why what it removes is not in use',
    (_name, sql) => {
      const found = IN_PLACE.filter((re) => re.test(code(sql)));
      if (found.length) expect(sql).toMatch(/^-- rolling-deploy: \S.*$/m);
    },
  );

  it('recognises what it forbids', () => {
    expect(IN_PLACE.some((re) => re.test(code('CREATE OR REPLACE FUNCTION herald_take() …')))).toBe(true);
    expect(IN_PLACE.some((re) => re.test(code('DROP FUNCTION herald_take(int);')))).toBe(true);
    expect(IN_PLACE.some((re) => re.test(code('ALTER TABLE deliveries DROP COLUMN lane;')))).toBe(true);
    expect(IN_PLACE.some((re) => re.test(code('CREATE FUNCTION herald_take_v2() …')))).toBe(false);
    expect(IN_PLACE.some((re) => re.test(code('-- DROP FUNCTION in a comment\nCREATE TABLE t (a int);')))).toBe(false);
  });
});
