/**
 * The error catalogue and its documentation (docs/errors.md) say the same thing: every code is
 * documented once, with the catalogue's status and retryable flag, and the page names no code that
 * the catalogue lacks.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS, HeraldError, isUnavailable } from './errors.ts';

const DOC_PATH = new URL('../../docs/errors.md', import.meta.url);

interface DocumentedError {
  code: string;
  status: number;
  retryable: boolean;
  when: string;
  todo: string;
}

/** The rows of the code table: `| \`CODE\` | status | yes/no | when | what to do |`. */
function parseErrorTable(markdown: string): { rows: DocumentedError[]; malformed: string[] } {
  const rows: DocumentedError[] = [];
  const malformed: string[] = [];
  const row = /^\|\s*`(HERALD_ERR_[A-Z0-9_]+)`\s*\|\s*(\d{3})\s*\|\s*(yes|no)\s*\|(.+)\|(.+)\|\s*$/;
  for (const line of markdown.split('\n')) {
    if (!/^\|\s*`HERALD_ERR_/.test(line)) continue;
    const m = row.exec(line);
    if (!m) {
      malformed.push(line);
      continue;
    }
    rows.push({
      code: m[1] as string,
      status: Number(m[2]),
      retryable: m[3] === 'yes',
      when: (m[4] as string).trim(),
      todo: (m[5] as string).trim(),
    });
  }
  return { rows, malformed };
}

describe('docs/errors.md', () => {
  const markdown = readFileSync(DOC_PATH, 'utf8');
  const { rows, malformed } = parseErrorTable(markdown);
  const byCode = new Map(rows.map((r) => [r.code, r]));
  const catalogue = Object.keys(ERRORS);

  it('has a well-formed table row for each code it lists, each listed once', () => {
    expect(malformed, 'rows that do not read as | `CODE` | status | yes/no | when | what to do |').toEqual([]);
    expect(rows.length).toBeGreaterThan(0);
    const codes = rows.map((r) => r.code);
    expect(
      codes.filter((c, i) => codes.indexOf(c) !== i),
      'codes listed twice',
    ).toEqual([]);
    for (const r of rows) {
      expect(r.when.length, `${r.code}: when it happens`).toBeGreaterThan(10);
      expect(r.todo.length, `${r.code}: what to do`).toBeGreaterThan(5);
    }
  });

  it('documents every code of the catalogue', () => {
    expect(
      catalogue.filter((c) => !byCode.has(c)),
      'codes missing from docs/errors.md',
    ).toEqual([]);
  });

  it("gives each code the catalogue's HTTP status and retryable flag", () => {
    for (const [code, e] of Object.entries(ERRORS)) {
      const doc = byCode.get(code);
      if (!doc) continue; // reported by the test above
      expect({ code, status: doc.status, retryable: doc.retryable }).toEqual({
        code,
        status: e.status,
        retryable: e.retryable,
      });
    }
  });

  it('names no code that the catalogue lacks, anywhere on the page', () => {
    const named = new Set(markdown.match(/HERALD_ERR_[A-Z0-9_]+/g) ?? []);
    expect(
      [...named].filter((c) => !(c in ERRORS)),
      'codes on the page but not in the catalogue',
    ).toEqual([]);
  });
});

describe('the catalogue', () => {
  it('gives every code a stable name, an error status and a summary', () => {
    for (const [code, e] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^HERALD_ERR_[A-Z0-9_]+$/);
      expect(e.status).toBeGreaterThanOrEqual(400);
      expect(e.status).toBeLessThan(600);
      expect(e.summary.length).toBeGreaterThan(0);
    }
  });

  it('builds errors with the status and flag of their code, in the API body shape', () => {
    const e = new HeraldError('HERALD_ERR_OVERLOADED', 'busy', { retryAfter: 1 });
    expect(e.status).toBe(429);
    expect(e.retryable).toBe(true);
    expect(e.toJSON()).toEqual({ error: { code: 'HERALD_ERR_OVERLOADED', message: 'busy', details: null } });
  });
});

describe('parseErrorTable', () => {
  it('reads rows, and reports the ones it cannot read instead of skipping them', () => {
    const { rows, malformed } = parseErrorTable(
      [
        '| code | HTTP status | retryable | when it happens | what to do |',
        '|---|---|---|---|---|',
        '| `HERALD_ERR_A` | 409 | no | Some time. | Something. |',
        '| `HERALD_ERR_B` | 4O9 | no | A typo in the status. | Fix it. |',
        '| `HERALD_ERR_C` | 503 | maybe | Not yes or no. | Fix it. |',
      ].join('\n'),
    );
    expect(rows).toEqual([
      { code: 'HERALD_ERR_A', status: 409, retryable: false, when: 'Some time.', todo: 'Something.' },
    ]);
    expect(malformed).toHaveLength(2);
  });
});

describe('isUnavailable', () => {
  it('names a store that cannot be reached or is not serving, and nothing else', () => {
    expect(isUnavailable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isUnavailable({ code: '57P03', message: 'the database system is starting up' })).toBe(true);
    expect(isUnavailable({ code: '08006', message: 'connection failure' })).toBe(true);
    expect(isUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isUnavailable(new Error('wrapped', { cause: { code: '57P01' } }))).toBe(true);
    expect(isUnavailable({ code: '23505', message: 'duplicate key value' })).toBe(false);
    expect(isUnavailable(new TypeError('x is undefined'))).toBe(false);
    expect(isUnavailable(null)).toBe(false);
  });
});
