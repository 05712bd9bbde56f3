/**
 * Category policies over HTTP, on both stores: PUT validates and stores the whole policy (defaults for
 * what it leaves out) and answers it as GET does, in the documented shape; DELETE removes it; bad
 * input is refused naming the field (cron, durations, overflow "digest" without a digest) and leaves
 * the stored policy as it was; only producers may call it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATEGORY_SHAPES } from '../src/api/openapi-shapes-categories.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, expectError, expectNamesField, userToken } from './support/http.ts';

const freshCategory = () => `cat-${randomUUID().slice(0, 8)}.x`;

function expectShape(value: unknown) {
  const r = CATEGORY_SHAPES.policy.schema.safeParse(value);
  expect(r.success ? [] : r.error.issues, JSON.stringify(value)).toEqual([]);
}

describe.each(['pglite', 'postgres'] as const)('categories (%s)', (storeKind) => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store: storeKind, roles: ['api'] });
  });
  afterAll(async () => {
    await t?.stop();
  });
  const path = (c: string) => `/v1/categories/${c}`;

  it("PUT API.md's shape → 200 with it; GET gives it back; DELETE removes it", async () => {
    const category = freshCategory();
    expectError(await t.api('GET', path(category)), 'HERALD_ERR_NOT_FOUND');
    const body = {
      priority: 'high',
      channels: ['in_app', 'email'],
      required: false,
      quietHours: true,
      digest: { cron: '0 9 * * *' },
      caps: { email: { max: 3, per: 'PT1H', overflow: 'digest' } },
      ttl: 'P7D',
    };
    const put = await t.api('PUT', path(category), body);
    expect(put.status).toBe(200);
    expect(put.json).toEqual({ category, ...body, updatedAt: expect.any(String) });
    expectShape(put.json);
    const got = await t.api('GET', path(category));
    expect(got.json).toEqual(put.json);

    const del = await t.api('DELETE', path(category));
    expect(del.status).toBe(204);
    expectError(await t.api('GET', path(category)), 'HERALD_ERR_NOT_FOUND');
    expectError(await t.api('DELETE', path(category)), 'HERALD_ERR_NOT_FOUND');
  });

  it('an empty body is the default policy; a PUT replaces the policy whole', async () => {
    const category = freshCategory();
    await t.api('PUT', path(category), { required: true, digest: { window: 'PT1H' } });
    const put = await t.api('PUT', path(category), {});
    expect(put.json).toEqual({
      category,
      priority: null,
      channels: null,
      required: false,
      quietHours: true,
      digest: null,
      caps: {},
      ttl: null,
      updatedAt: expect.any(String),
    });
    expectShape(put.json);
  });

  it('bad input → 400 naming the field, and what was stored stays', async () => {
    const category = freshCategory();
    const good = await t.api('PUT', path(category), { ttl: 'P7D' });
    const cases: [unknown, string][] = [
      [{ priority: 'urgent' }, 'priority'],
      [{ channels: ['fax'] }, 'channels.0'],
      [{ channels: [] }, 'channels'],
      [{ channels: ['email', 'email'] }, 'channels'],
      [{ required: 'yes' }, 'required'],
      [{ quietHours: 1 }, 'quietHours'],
      [{ digest: { window: 'PT1S' } }, 'digest.window'],
      [{ digest: { window: 'P1M' } }, 'digest.window'],
      [{ digest: { cron: '61 9 * * *' } }, 'digest.cron'],
      [{ digest: { cron: '0 9 * *' } }, 'digest.cron'],
      [{ digest: { every: 'PT1H' } }, 'digest'],
      [{ caps: { fax: { max: 1, per: 'PT1H', overflow: 'drop' } } }, 'caps.fax'],
      [{ caps: { email: { max: 0, per: 'PT1H', overflow: 'drop' } } }, 'caps.email.max'],
      [{ caps: { email: { max: 1.5, per: 'PT1H', overflow: 'drop' } } }, 'caps.email.max'],
      [{ caps: { email: { max: 1, per: 'soon', overflow: 'drop' } } }, 'caps.email.per'],
      [{ caps: { email: { max: 1, per: 'PT1H', overflow: 'queue' } } }, 'caps.email.overflow'],
      [{ caps: { email: { max: 1, per: 'PT1H', overflow: 'digest' } } }, 'caps.email.overflow'],
      [{ ttl: 'forever' }, 'ttl'],
      [{ ttl: 'P400D' }, 'ttl'],
      [{ colour: 'red' }, 'colour'],
      [[], '(body)'],
    ];
    for (const [body, field] of cases) {
      const r = await t.api('PUT', path(category), body);
      expectError(r, 'HERALD_ERR_VALIDATION');
      expectNamesField(r.json.error, field);
    }
    expectError(await t.api('PUT', '/v1/categories/a..b', {}), 'HERALD_ERR_VALIDATION');
    expect((await t.api('GET', path(category))).json).toEqual(good.json);
  });

  it('only producers: a user token is refused', async () => {
    expectError(await t.api('PUT', path(freshCategory()), {}, bearer(userToken('alice'))), 'HERALD_ERR_UNAUTHORIZED');
  });
});
