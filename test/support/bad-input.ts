/**
 * A table of bad requests, run against a Herald on each store: every row must be answered with its
 * status and error code in Herald's error shape (never a 500), errors about input must name the
 * field, and after the whole table nothing may have been stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS, type ErrorCode } from '../../src/core/errors.ts';
import { startTestHerald, type TestHerald } from './herald.ts';
import { countRows, expectError, expectNamesField, JSON_TYPE, PRODUCER, rawRequest } from './http.ts';

/** The body limit of the Herald the tables run on (small, so that a 100 KB body is refused). */
export const TABLE_MAX_BODY_BYTES = 65_536;

export interface BadInputCase {
  name: string;
  /** Default POST. */
  method?: string;
  /** Default /v1/notifications. */
  path?: string;
  /** Sent JSON-encoded. */
  body?: unknown;
  /** Sent exactly as given (text or bytes) instead of `body`. */
  raw?: string | Buffer;
  /**
   * Replace the default headers: the producer's Authorization, and `content-type: application/json`
   * when there is a body.
   */
  headers?: Record<string, string>;
  /** Added to the default headers. */
  extraHeaders?: Record<string, string>;
  status: number;
  code: ErrorCode;
  /** What the error must name (required for errors about the input: validation and encoding). */
  field?: string;
}

const NAMES_A_FIELD: ReadonlySet<ErrorCode> = new Set(['HERALD_ERR_VALIDATION', 'HERALD_ERR_INVALID_ENCODING']);

export async function sendCase(t: TestHerald, c: BadInputCase) {
  const payload = c.raw ?? (c.body === undefined ? undefined : JSON.stringify(c.body));
  const headers = c.headers ?? {
    ...PRODUCER,
    ...(payload === undefined ? {} : JSON_TYPE),
    ...c.extraHeaders,
  };
  return rawRequest(t.url, c.method ?? 'POST', c.path ?? '/v1/notifications', { body: payload, headers });
}

/** Declares the table once per store, on one Herald per store, ending with "nothing was stored". */
export function badInputSuite(
  title: string,
  cases: readonly BadInputCase[],
  options: { control: BadInputCase | { body: unknown } },
): void {
  const names = cases.map((c) => c.name);
  if (new Set(names).size !== names.length) throw new Error(`${title}: two rows have the same name`);
  for (const c of cases) {
    if (ERRORS[c.code].status !== c.status) throw new Error(`row "${c.name}": ${c.code} is not a ${c.status}`);
    if (NAMES_A_FIELD.has(c.code) && !c.field) throw new Error(`row "${c.name}": say which field the error names`);
  }

  describe.each(['pglite', 'postgres'] as const)(`${title} (%s)`, (store) => {
    let t: TestHerald;
    beforeAll(async () => {
      // The api role alone: nothing should reach a worker, and idle workers would only cost CPU.
      t = await startTestHerald({
        store,
        roles: ['api'],
        env: { HERALD_MAX_BODY_BYTES: String(TABLE_MAX_BODY_BYTES) },
      });
    });
    afterAll(async () => {
      await t?.stop();
    });

    it.each(cases)('$name → $status $code', async (c) => {
      const res = await sendCase(t, c);
      expect(res.status, `never a 5xx: ${res.text.slice(0, 300)}`).toBeLessThan(500);
      const error = expectError(res, c.code);
      if (c.field) expectNamesField(error, c.field);
    });

    it('stored nothing for any row; the control request is then accepted and stored', async () => {
      for (const table of ['notifications', 'deliveries', 'idempotency_keys'] as const) {
        expect(await countRows(t, table), table).toBe(0);
      }
      // The rows are near misses of this request: it must pass, and the counts must see it.
      const res = await sendCase(t, { name: 'control', status: 202, code: 'HERALD_ERR_INTERNAL', ...options.control });
      expect(res.status, res.text).toBe(202);
      expect(await countRows(t, 'notifications')).toBe(1);
    });
  });
}
