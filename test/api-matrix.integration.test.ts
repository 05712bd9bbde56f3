/**
 * "Never a 500, always Herald's error shape", across the whole HTTP surface: every route, with
 * every method, with odd path segments and query values (empty, percent-garbage, huge numbers,
 * NUL, emoji, 600 characters…) and a few odd bodies. The table-driven suites check the exact code
 * of each documented mistake; this one checks that nothing in between falls through.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestHerald, TEST_API_KEY, type TestHerald } from './support/herald.ts';

const SEGMENTS = [
  '',
  'a',
  '%00',
  '%',
  '%ZZ',
  '..',
  '%20',
  'é',
  '😀',
  'a'.repeat(600),
  '1e309',
  '-1',
  '0',
  '99999999999999999999',
  'null',
  '[]',
  'NaN',
  '%2F',
  '01a236f7-8298-7000-92db-e0afdd391d2b',
];

const routes = (s: string) => [
  '/v1/notifications',
  `/v1/notifications/${s}`,
  `/v1/notifications/${s}/cancel`,
  `/v1/notifications/01a236f7-8298-7000-92db-e0afdd391d2b?cursor=${s}&limit=${s}`,
  `/v1/users/${s}`,
  `/v1/users/${s}/tokens`,
  `/v1/users/${s}/inbox`,
  `/v1/users/alice/inbox?limit=${s}&before=${s}&unread=${s}`,
  `/v1/users/${s}/inbox/read`,
  `/v1/users/${s}/presence`,
  `/v1/users/${s}/preferences`,
  `/v1/unsubscribe?token=${s}`,
  `/v1/providers?x=${s}`,
  `/v1/dead-letters?limit=${s}&cursor=${s}`,
  `/v1/dead-letters/${s}/replay`,
  `/v1/realtime?token=${s}&after=${s}`,
];

const BODIES = ['', 'null', '{"to":["a"],"category":"a","seqs":[1e20],"upToSeq":9223372036854775808,"ttlSeconds":-1}'];
const METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'DELETE', 'PATCH'];

let t: TestHerald;
beforeAll(async () => {
  t = await startTestHerald({ store: 'pglite' });
});
afterAll(async () => {
  await t?.stop();
});

it('answers every route × method × odd input below 500, errors in Herald’s shape', async () => {
  const requests: { method: string; path: string; body: string | undefined }[] = [];
  for (const s of SEGMENTS)
    for (const path of routes(s))
      for (const method of METHODS)
        for (const body of method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? [undefined] : BODIES)
          requests.push({ method, path, body });
  const problems: string[] = [];
  let next = 0;
  // Sixteen at a time: the point is coverage, not ordering.
  const worker = async () => {
    while (next < requests.length) {
      const { method, path, body } = requests[next++] as (typeof requests)[number];
      const res = await fetch(t.url + path, {
        method,
        headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
        body,
      });
      const text = await res.text();
      if (res.status >= 500) problems.push(`${res.status} ${method} ${path.slice(0, 80)} ${text.slice(0, 120)}`);
      else if (res.status >= 400 && method !== 'HEAD' && !text.startsWith('{"error":{"code":"HERALD_ERR_'))
        problems.push(`not Herald's shape: ${res.status} ${method} ${path.slice(0, 80)} ${text.slice(0, 80)}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  expect(requests.length).toBeGreaterThan(3_000);
  expect(problems).toEqual([]);
}, 120_000);
