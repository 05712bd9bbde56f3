/**
 * HTTP helpers for the API tests: raw requests (bytes, any headers, no default authorization),
 * assertions on Herald's error shape, row counts, and user tokens signed by hand (HS256 or the
 * forgeries a server must refuse: `alg: none`, a wrong key, no `exp`).
 */
import { createHmac } from 'node:crypto';
import { expect } from 'vitest';
import { ERRORS, type ErrorCode } from '../../src/core/errors.ts';
import type { SqlStore } from '../../src/store/store-sql.ts';
import { TEST_API_KEY, TEST_JWT_SECRET, type TestHerald } from './herald.ts';

export const PRODUCER = { authorization: `Bearer ${TEST_API_KEY}` } as const;
export const JSON_TYPE = { 'content-type': 'application/json' } as const;

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or null when it is not JSON. */
  json: any;
}

/** Sends exactly `body` (bytes or text) with exactly `headers` (nothing added, except what fetch adds). */
export async function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: string | Buffer; headers?: Record<string, string>; redirect?: RequestRedirect } = {},
): Promise<RawResponse> {
  const res = await fetch(baseUrl + path, {
    method,
    headers: options.headers ?? {},
    body: typeof options.body === 'string' || options.body === undefined ? options.body : new Uint8Array(options.body),
    redirect: options.redirect ?? 'follow',
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Asserts `res` is the error `code`: its catalogue status, and the body
 * `{"error": {"code", "message", "details"}}` with a non-empty message. Returns the error object.
 */
export function expectError(res: { status: number; json: any; text?: string }, code: ErrorCode) {
  const seen = res.text ?? JSON.stringify(res.json);
  expect(res.status, `status (body: ${seen.slice(0, 300)})`).toBe(ERRORS[code].status);
  expect(res.json, 'body is JSON').toBeTypeOf('object');
  expect(Object.keys(res.json ?? {}), 'top-level keys').toEqual(['error']);
  const error = res.json.error;
  expect(Object.keys(error).sort(), 'error keys').toEqual(['code', 'details', 'message']);
  expect(error.code).toBe(code);
  expect(error.message).toBeTypeOf('string');
  expect(error.message.length).toBeGreaterThan(0);
  return error as { code: string; message: string; details: unknown };
}

/**
 * Asserts the error names `field`: in `details[].field` (exactly, or a sub-path such as `to.0`) or
 * in the message.
 */
export function expectNamesField(error: { message: string; details: unknown }, field: string): void {
  const fields = Array.isArray(error.details)
    ? error.details.map((d: { field?: unknown }) => String(d?.field ?? ''))
    : [];
  const named =
    fields.some((f) => f === field || f.startsWith(`${field}.`)) ||
    error.message.toLowerCase().includes(field.toLowerCase());
  expect(named, `"${field}" named in ${JSON.stringify(error)}`).toBe(true);
}

export const TABLES = ['notifications', 'deliveries', 'idempotency_keys', 'inbox', 'timeline'] as const;
export type Table = (typeof TABLES)[number];

export async function countRows(t: TestHerald, table: Table): Promise<number> {
  const store = t.herald.adapters.store as SqlStore;
  const [r] = await store.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r?.n ?? 0;
}

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');

/**
 * A JWT signed here rather than by Herald: HMAC with `secret` (default the test secret), or
 * unsigned with `alg: "none"`. Claims are given as they go on the wire (`exp` in seconds).
 */
export function signJwt(
  claims: Record<string, unknown>,
  options: { secret?: string; alg?: 'HS256' | 'HS384' | 'HS512' | 'none' } = {},
): string {
  const alg = options.alg ?? 'HS256';
  const head = `${b64url(JSON.stringify({ alg, typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  if (alg === 'none') return `${head}.`;
  const sig = createHmac(`sha${alg.slice(2)}`, options.secret ?? TEST_JWT_SECRET)
    .update(head)
    .digest('base64url');
  return `${head}.${sig}`;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A valid user token for `userId`, signed by hand with the test secret, expiring in an hour. */
export function userToken(userId: string): string {
  return signJwt({ sub: userId, iat: nowSeconds(), exp: nowSeconds() + 3600 });
}

export const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });
