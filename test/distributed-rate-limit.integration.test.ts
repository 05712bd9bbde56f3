/**
 * API.md: "With REDIS_URL the limit holds across all api processes together." Two api processes
 * (separate Herald instances, each with its own Redis connection) on one PostgreSQL and one Redis:
 * a key's requests spread over both are limited as if they went to one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPostgresUrl } from './support/databases.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';
import { type PrivateRedis, privateRedis } from './support/redis.ts';

const BURST = 6;

let redis: PrivateRedis;
let db: { url: string; drop(): Promise<void> };
let apis: TestHerald[] = [];

beforeAll(async () => {
  redis = await privateRedis();
  db = await freshPostgresUrl();
  // A token every 100 s: within the test only the burst is served.
  const env = { REDIS_URL: redis.url, HERALD_RATE_LIMIT_RPS: '0.01', HERALD_RATE_LIMIT_BURST: String(BURST) };
  apis = [
    await startTestHerald({ store: 'postgres', databaseUrl: db.url, roles: ['api'], env }),
    await startTestHerald({ store: 'postgres', databaseUrl: db.url, roles: ['api'], env }),
  ];
}, 60_000);

afterAll(async () => {
  for (const a of apis) await a.stop().catch(() => {});
  await db?.drop();
  await redis?.cleanup();
});

describe('producer rate limits across api processes', () => {
  it('serves the burst once across both processes, then refuses on either with 429 and Retry-After', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 2 * BURST; i++) {
      const r = await (apis[i % 2] as TestHerald).api('POST', '/v1/notifications', {
        to: ['u'],
        category: 'test.limits',
        channels: ['in_app'],
        title: `n${i}`,
      });
      statuses.push(r.status);
      if (r.status === 429) retryAfter ??= r.headers.get('retry-after');
    }
    // Per process, each would have served BURST: 2 × BURST in all.
    expect(statuses.filter((s) => s === 202)).toHaveLength(BURST);
    expect(statuses.slice(BURST)).toEqual(Array(BURST).fill(429));
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });
});
