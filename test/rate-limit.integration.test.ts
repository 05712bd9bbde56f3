/**
 * Producer rate limits through a real server: per API key, a token bucket (HERALD_RATE_LIMIT_RPS,
 * HERALD_RATE_LIMIT_BURST); over it `429 HERALD_ERR_RATE_LIMITED` with `Retry-After`; the three
 * `RateLimit-*` headers on every answer to a producer; nothing counted or added for 401s, user
 * tokens and operations routes; no limit and no headers when unset.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHerald, TEST_API_KEY, type TestHerald } from './support/herald.ts';
import { bearer, countRows, expectError, userToken } from './support/http.ts';

const SECOND_KEY = 'second-api-key-0123456789abcdef';
const THIRD_KEY = 'third-api-key-0123456789abcdefgh';
const KEYS = [TEST_API_KEY, SECOND_KEY, THIRD_KEY].join(',');
const NOTIFICATION = { to: ['user-1'], category: 'rate.limit' };
const HEADERS = ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'] as const;

/** The three headers as integers; fails when one is missing or not a whole number. */
function rateHeaders(res: { headers: Headers }): { limit: number; remaining: number; reset: number } {
  const [limit, remaining, reset] = HEADERS.map((h) => {
    const v = res.headers.get(h);
    expect(v, `${h} header`).toMatch(/^\d+$/);
    return Number(v);
  }) as [number, number, number];
  return { limit, remaining, reset };
}

function expectNoRateHeaders(res: { headers: Headers }): void {
  for (const h of [...HEADERS, 'retry-after']) expect(res.headers.get(h), `${h} header`).toBeNull();
}

describe('rate limits under load (20/s, bursts of 10)', () => {
  const rps = 20;
  const burst = 10;
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({
      store: 'pglite',
      env: { HERALD_API_KEYS: KEYS, HERALD_RATE_LIMIT_RPS: String(rps), HERALD_RATE_LIMIT_BURST: String(burst) },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('a key hammered with 16 concurrent clients is served at most rps·t + burst; another key is untouched', async () => {
    const statuses = new Map<number, number>();
    let served = 0;
    const start = performance.now();
    const until = start + 2500;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (performance.now() < until) {
          const res = await t.api('POST', '/v1/notifications', NOTIFICATION);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 202) served++;
        }
      }),
    );
    // Every decision was taken between `start` and now, so this is an upper bound on its interval.
    const seconds = (performance.now() - start) / 1000;
    const summary = `${JSON.stringify(Object.fromEntries(statuses))} in ${seconds.toFixed(2)} s`;
    expect([...statuses.keys()].sort(), summary).toEqual([202, 429]);
    expect(served, summary).toBeLessThanOrEqual(rps * seconds + burst);
    expect(served, summary).toBeGreaterThanOrEqual(burst);
    // What was served was stored, and nothing else: a refused request never reaches ingest.
    expect(await countRows(t, 'notifications')).toBe(served);

    const other = await t.api('POST', '/v1/notifications', NOTIFICATION, bearer(SECOND_KEY));
    expect(other.status).toBe(202);
    expect(rateHeaders(other)).toMatchObject({ limit: burst, remaining: burst - 1 });
  });
});

describe('rate limit answers (one request per 20 s, bursts of 3)', () => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({
      store: 'pglite',
      env: { HERALD_API_KEYS: KEYS, HERALD_RATE_LIMIT_RPS: '0.05', HERALD_RATE_LIMIT_BURST: '3' },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('202, 400 and 404 answers carry the headers and count; the 429 is in Herald’s shape with Retry-After', async () => {
    const accepted = await t.api('POST', '/v1/notifications', NOTIFICATION);
    expect(accepted.status).toBe(202);
    // One token owed at 0.05/s: the bucket is full again in 20 s.
    expect(rateHeaders(accepted)).toEqual({ limit: 3, remaining: 2, reset: 20 });
    expect(accepted.headers.get('retry-after')).toBeNull();

    const invalid = await t.api('POST', '/v1/notifications', { to: [] });
    expectError(invalid, 'HERALD_ERR_VALIDATION');
    expect(rateHeaders(invalid)).toMatchObject({ limit: 3, remaining: 1 });

    const missing = await t.api('GET', '/v1/notifications/00000000-0000-7000-8000-000000000000');
    expectError(missing, 'HERALD_ERR_NOT_FOUND');
    expect(rateHeaders(missing)).toMatchObject({ limit: 3, remaining: 0 });

    const limited = await t.api('POST', '/v1/notifications', NOTIFICATION);
    const error = expectError(limited, 'HERALD_ERR_RATE_LIMITED');
    expect(error.message).toMatch(/retry in/);
    const retryAfter = limited.headers.get('retry-after');
    expect(retryAfter).toMatch(/^\d+$/);
    // The next token is at most 20 s away (a few ms of it have passed).
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(20);
    const headers = rateHeaders(limited);
    expect(headers).toMatchObject({ limit: 3, remaining: 0 });
    expect(headers.reset).toBeGreaterThanOrEqual(1);

    // The refused request stored nothing; the accepted one did.
    expect(await countRows(t, 'notifications')).toBe(1);
    // Still refused on the producer-only routes of every kind while the bucket is empty.
    expectError(await t.api('GET', '/v1/dead-letters'), 'HERALD_ERR_RATE_LIMITED');
  });

  it('the OpenAPI document lists the 429 on every limited route, and only there', async () => {
    const doc = (await t.api('GET', '/openapi.json')).json;
    expect(Object.keys(doc.paths['/v1/dead-letters'].get.responses)).toContain('429');
    expect(Object.keys(doc.paths['/v1/users/{userId}/inbox'].get.responses)).toContain('429');
    expect(Object.keys(doc.paths['/healthz'].get.responses ?? {})).not.toContain('429');
  });

  it('another key has its own bucket', async () => {
    const res = await t.api('POST', '/v1/notifications', NOTIFICATION, bearer(SECOND_KEY));
    expect(res.status).toBe(202);
    expect(rateHeaders(res)).toMatchObject({ limit: 3, remaining: 2 });
  });

  it('401s, user tokens and operations routes are neither limited nor counted, and get no headers', async () => {
    const wrongKey = await t.api('POST', '/v1/notifications', NOTIFICATION, bearer('not-a-key-0123456789abcdef'));
    expectError(wrongKey, 'HERALD_ERR_UNAUTHORIZED');
    expectNoRateHeaders(wrongKey);

    // The default key's bucket is empty (first test): a user token on a producer-or-user route is
    // not a producer request, so it is served, without headers.
    const asUser = bearer(userToken('alice'));
    for (let i = 0; i < 5; i++) {
      const inbox = await t.api('GET', '/v1/users/alice/inbox', undefined, asUser);
      expect(inbox.status).toBe(200);
      expectNoRateHeaders(inbox);
    }
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      for (let i = 0; i < 4; i++) {
        const res = await t.api('GET', path, undefined, bearer(THIRD_KEY));
        expect(res.status, path).toBe(200);
        expectNoRateHeaders(res);
      }
    }
    // None of that touched the third key's bucket: its first counted request finds it full.
    const first = await t.api('GET', '/v1/users/alice/inbox', undefined, bearer(THIRD_KEY));
    expect(first.status).toBe(200);
    expect(rateHeaders(first)).toMatchObject({ limit: 3, remaining: 2 });
    // HEAD, which Fastify adds for every GET route, is one request and takes one token.
    const head = await t.api('HEAD', '/v1/users/alice/inbox', undefined, bearer(THIRD_KEY));
    expect(head.status).toBe(200);
    expect(rateHeaders(head)).toMatchObject({ limit: 3, remaining: 1 });
  });
});

describe('no rate limit set', () => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store: 'pglite' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('serves every request and adds no RateLimit headers', async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => t.api('POST', '/v1/notifications', NOTIFICATION)),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(202));
    for (const a of answers) expectNoRateHeaders(a);
    const invalid = await t.api('POST', '/v1/notifications', {});
    expectError(invalid, 'HERALD_ERR_VALIDATION');
    expectNoRateHeaders(invalid);
  });
});
