/**
 * An in-process Herald for tests, on a fresh store (in-memory PGlite from the migrated template,
 * or a fresh PostgreSQL database), listening on a random port, with known secrets.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/config.ts';
import type { Clock } from '../../src/core/ports.ts';
import { type Herald, type Role, startHerald } from '../../src/herald.ts';
import { freshPostgresUrl, openTestPglite } from './databases.ts';

export const TEST_API_KEY = 'test-api-key-0123456789abcdef';
export const TEST_JWT_SECRET = 'test-jwt-secret-0123456789abcdef';
export const TEST_WEBHOOK_SECRET = `whsec_${Buffer.from('test-webhook-secret-0123456789').toString('base64')}`;
/**
 * Test receivers listen on loopback, which Herald refuses to reach unless allowed; every test Herald
 * allows it. A test of the refusal passes `HERALD_EGRESS_ALLOW: ''` (unset: only public addresses).
 */
export const TEST_EGRESS_ALLOW = '127.0.0.0/8,::1/128';

export interface TestHerald {
  herald: Herald;
  url: string;
  /** Calls the API as the producer (or with `headers.authorization` overridden). */
  api(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; json: any; headers: Headers }>;
  stop(): Promise<void>;
}

/** The settings every test Herald runs with: a free port on loopback, known secrets, no log. */
export function testEnv(dataDir: string): Record<string, string> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEYS: TEST_API_KEY,
    HERALD_JWT_SECRET: TEST_JWT_SECRET,
    HERALD_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
    HERALD_LOG_LEVEL: 'silent',
    HERALD_EGRESS_ALLOW: TEST_EGRESS_ALLOW,
  };
}

export async function startTestHerald(
  options: {
    store?: 'pglite' | 'postgres';
    env?: Record<string, string>;
    roles?: Role[];
    /** With store 'postgres': this database (kept after stop, for a restart) rather than a fresh one. */
    databaseUrl?: string;
    /** Where Herald logs (default: a logger at HERALD_LOG_LEVEL, silent in tests). */
    logger?: pino.Logger;
    /** "Now" of the decider and its send-time gates (quiet hours on a given night, caps in one window). */
    clock?: Clock;
  } = {},
): Promise<TestHerald> {
  const dataDir = await mkdtemp(join(tmpdir(), 'herald-test-'));
  const pgDb =
    options.store !== 'postgres'
      ? null
      : options.databaseUrl
        ? { url: options.databaseUrl, drop: async () => {} }
        : await freshPostgresUrl();
  const config = loadConfig({
    ...testEnv(dataDir),
    HERALD_POLL_MS: '50',
    ...(pgDb ? { DATABASE_URL: pgDb.url, HERALD_PG_POOL_SIZE: '8' } : {}),
    ...options.env,
  });
  const store = pgDb ? undefined : await openTestPglite();
  const herald = await startHerald(config, {
    logger: options.logger ?? pino({ level: config.logLevel }),
    ...(store ? { store } : {}),
    ...(options.roles ? { roles: options.roles } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const url = herald.url as string;
  return {
    herald,
    url,
    async api(method, path, body, headers = {}) {
      const res = await fetch(url + path, {
        method,
        headers: {
          authorization: `Bearer ${TEST_API_KEY}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let json: unknown = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: res.status, json, headers: res.headers };
    },
    async stop() {
      await herald.stop();
      await pgDb?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function eventually<T>(
  fn: () => Promise<T> | T,
  what: string,
  timeoutMs = 10_000,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
