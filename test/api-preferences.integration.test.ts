/**
 * Preferences over HTTP, on both stores: PUT replaces and GET gives back API.md's shape (the empty
 * shape for a user who never set any), bad input is refused naming the field and leaves the stored
 * preferences as they were, and a user token reaches its own preferences only.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFERENCE_SHAPES } from '../src/api/openapi-shapes-users.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, expectError, expectNamesField, userToken } from './support/http.ts';

const freshUser = () => `p-${randomUUID().slice(0, 8)}`;
const EXAMPLE = {
  channels: { email: false },
  categories: { 'marketing.*': false, 'comment.reply': { email: false } },
  quietHours: { start: '22:00', end: '07:00' },
};

function expectShape(value: unknown) {
  const r = PREFERENCE_SHAPES.preferences.schema.safeParse(value);
  expect(r.success ? [] : r.error.issues, JSON.stringify(value)).toEqual([]);
}

describe.each(['pglite', 'postgres'] as const)('preferences (%s)', (storeKind) => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store: storeKind, roles: ['api'] });
  });
  afterAll(async () => {
    await t?.stop();
  });
  const path = (userId: string) => `/v1/users/${encodeURIComponent(userId)}/preferences`;

  it('GET of a user who never set any: the empty shape (no profile needed)', async () => {
    const r = await t.api('GET', path(freshUser()));
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ channels: {}, categories: {}, quietHours: null });
    expectShape(r.json);
  });

  it("PUT API.md's example → 200 with it; GET gives the same back; a second PUT replaces it whole", async () => {
    const user = freshUser();
    const put = await t.api('PUT', path(user), EXAMPLE);
    expect(put.status).toBe(200);
    expect(put.json).toEqual(EXAMPLE);
    expectShape(put.json);
    const got = await t.api('GET', path(user));
    expect(got.status).toBe(200);
    expect(got.json).toEqual(EXAMPLE);

    const next = { categories: { 'billing.*': { sms: false, email: true } } };
    expect((await t.api('PUT', path(user), next)).json).toEqual({ channels: {}, ...next, quietHours: null });
    expect((await t.api('GET', path(user))).json).toEqual({ channels: {}, ...next, quietHours: null });
  });

  it('bad input → 400 naming the field, and what was stored stays', async () => {
    const user = freshUser();
    await t.api('PUT', path(user), EXAMPLE);
    const cases: [unknown, string][] = [
      [{ channels: { fax: false } }, 'channels.fax'],
      [{ channels: { email: 'no' } }, 'channels.email'],
      [{ categories: { 'comment.reply': 'off' } }, 'categories.comment.reply'],
      [{ categories: { 'comment.reply': { email: 1 } } }, 'categories.comment.reply.email'],
      [{ categories: { 'comment.reply': { pigeon: false } } }, 'categories.comment.reply.pigeon'],
      [{ categories: { 'a..b': false } }, 'categories.a..b'],
      [{ categories: { 'a.*.b': false } }, 'categories.a.*.b'],
      [{ quietHours: { start: '22:00', end: '7pm' } }, 'quietHours.end'],
      [{ quietHours: '22:00-07:00' }, 'quietHours'],
      [{ mute: true }, 'mute'],
      [[], '(body)'],
    ];
    for (const [body, field] of cases) {
      const r = await t.api('PUT', path(user), body);
      expectNamesField(expectError(r, 'HERALD_ERR_VALIDATION'), field);
    }
    expect((await t.api('GET', path(user))).json).toEqual(EXAMPLE);
  });

  it("a user token reads and writes its own preferences, and gets 403 on another user's", async () => {
    const alice = freshUser();
    const bob = freshUser();
    const asAlice = bearer(userToken(alice));
    expect((await t.api('PUT', path(alice), EXAMPLE, asAlice)).status).toBe(200);
    expect((await t.api('GET', path(alice), undefined, asAlice)).json).toEqual(EXAMPLE);
    expectError(await t.api('PUT', path(bob), EXAMPLE, asAlice), 'HERALD_ERR_FORBIDDEN');
    expectError(await t.api('GET', path(bob), undefined, asAlice), 'HERALD_ERR_FORBIDDEN');
    expect((await t.api('GET', path(bob))).json).toEqual({ channels: {}, categories: {}, quietHours: null });
    expectError(await t.api('GET', path(alice), undefined, { authorization: '' }), 'HERALD_ERR_UNAUTHORIZED');
  });
});
