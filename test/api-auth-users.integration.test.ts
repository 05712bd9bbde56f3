/**
 * Authentication and users: user tokens issued by Herald or signed by the producer with the shared
 * secret, what such a token may touch (its own user only), the tokens Herald must refuse, and
 * user profiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHerald, TEST_JWT_SECRET, type TestHerald } from './support/herald.ts';
import { bearer, expectError, nowSeconds, signJwt, userToken } from './support/http.ts';

const decode = (part: string | undefined) => JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8'));

describe('auth and users', () => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store: 'pglite' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const asUser = (token: string) => bearer(token);

  it('POST /v1/users/{id}/tokens → 201 {token, expiresAt}: an HS256 JWT for that user', async () => {
    const before = Date.now();
    const res = await t.api('POST', '/v1/users/alice/tokens');
    expect(res.status).toBe(201);
    expect(Object.keys(res.json).sort()).toEqual(['expiresAt', 'token']);
    const expiresAt = Date.parse(res.json.expiresAt);
    expect(new Date(expiresAt).toISOString()).toBe(res.json.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 3_600_000 - 2_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 3_600_000 + 1_000);

    const [header, payload] = String(res.json.token).split('.');
    expect(decode(header).alg).toBe('HS256');
    expect(decode(payload).sub).toBe('alice');
    expect(decode(payload).exp * 1000).toBe(expiresAt);

    const short = await t.api('POST', '/v1/users/alice/tokens', { ttlSeconds: 120 });
    expect(short.status).toBe(201);
    expect(Math.abs(Date.parse(short.json.expiresAt) - (Date.now() + 120_000))).toBeLessThan(3_000);
  });

  it("an issued token reads and marks its own user's inbox (200), not another user's (403)", async () => {
    const { token } = (await t.api('POST', '/v1/users/alice/tokens')).json;

    const own = await t.api('GET', '/v1/users/alice/inbox', undefined, asUser(token));
    expect(own.status, JSON.stringify(own.json)).toBe(200);
    expect(own.json).toEqual({ items: [], unreadCount: 0, nextBefore: null });
    const read = await t.api('POST', '/v1/users/alice/inbox/read', { all: true }, asUser(token));
    expect(read.status).toBe(200);
    expect(read.json).toEqual({ unreadCount: 0 });

    expectError(await t.api('GET', '/v1/users/bob/inbox', undefined, asUser(token)), 'HERALD_ERR_FORBIDDEN');
    expectError(await t.api('POST', '/v1/users/bob/inbox/read', { all: true }, asUser(token)), 'HERALD_ERR_FORBIDDEN');
    expectError(await t.api('GET', '/v1/users/bob', undefined, asUser(token)), 'HERALD_ERR_FORBIDDEN');
    // Ids are compared exactly.
    expectError(await t.api('GET', '/v1/users/Alice/inbox', undefined, asUser(token)), 'HERALD_ERR_FORBIDDEN');
  });

  it('a token the producer signs itself with the shared secret works like an issued one', async () => {
    const own = await t.api('GET', '/v1/users/carol/inbox', undefined, asUser(userToken('carol')));
    expect(own.status).toBe(200);
    expectError(
      await t.api('GET', '/v1/users/alice/inbox', undefined, asUser(userToken('carol'))),
      'HERALD_ERR_FORBIDDEN',
    );
  });

  it('refuses expired, unsigned, badly signed and incomplete tokens with 401', async () => {
    const now = nowSeconds();
    const valid = { sub: 'alice', iat: now, exp: now + 3600 };
    const issued = (await t.api('POST', '/v1/users/alice/tokens')).json.token as string;
    const [h, , s] = issued.split('.');
    const forged: Record<string, string> = {
      expired: signJwt({ ...valid, exp: now - 60 }),
      'expired an hour ago': signJwt({ sub: 'alice', iat: now - 7200, exp: now - 3600 }),
      'alg none': signJwt(valid, { alg: 'none' }),
      'alg none with a valid signature appended': `${signJwt(valid, { alg: 'none' })}${signJwt(valid).split('.')[2]}`,
      'wrong secret': signJwt(valid, { secret: `${TEST_JWT_SECRET}-not` }),
      'payload swapped under a valid signature': `${h}.${Buffer.from(JSON.stringify({ ...valid, sub: 'bob' })).toString('base64url')}.${s}`,
      'signature truncated': issued.slice(0, -4),
      'HS512 with the right secret': signJwt(valid, { alg: 'HS512' }),
      'without exp': signJwt({ sub: 'alice', iat: now }),
      'exp as a string': signJwt({ ...valid, exp: String(now + 3600) }),
      'without sub': signJwt({ iat: now, exp: now + 3600 }),
      'empty sub': signJwt({ ...valid, sub: '' }),
      'not before an hour from now': signJwt({ ...valid, nbf: now + 3600 }),
      'three garbage parts': 'aaa.bbb.ccc',
      'two parts': issued.split('.').slice(0, 2).join('.'),
    };
    for (const [why, token] of Object.entries(forged)) {
      const res = await t.api('GET', '/v1/users/alice/inbox', undefined, asUser(token));
      expect(res.status, `${why}: ${JSON.stringify(res.json)}`).toBe(401);
      expectError(res, 'HERALD_ERR_UNAUTHORIZED');
    }
    const expired = await t.api('GET', '/v1/users/alice/inbox', undefined, asUser(forged.expired as string));
    expect(expired.json.error.message).toMatch(/expired/);

    // The same claims, properly signed, pass: the refusals above are about what was forged.
    expect((await t.api('GET', '/v1/users/alice/inbox', undefined, asUser(signJwt(valid)))).status).toBe(200);
  });

  it('a user token is not a producer credential (401 on producer routes)', async () => {
    const token = userToken('alice');
    for (const [method, path, body] of [
      ['POST', '/v1/notifications', { to: ['alice'], category: 'a' }],
      ['POST', '/v1/users/alice/tokens', {}],
      ['PUT', '/v1/users/alice', { email: 'alice@example.com' }],
      ['GET', '/v1/dead-letters', undefined],
    ] as const) {
      expectError(await t.api(method, path, body, asUser(token)), 'HERALD_ERR_UNAUTHORIZED');
    }
  });

  it('PUT /v1/users/{id} stores the profile; GET returns it; a second PUT replaces it', async () => {
    const profile = {
      email: 'dana@example.com',
      phone: '+14155550100',
      timezone: 'Europe/Paris',
      locale: 'fr-FR',
      webhookUrl: 'https://example.com/hooks/dana',
      chatWebhookUrl: 'https://chat.example.com/services/dana',
    };
    const put = await t.api('PUT', '/v1/users/dana', profile);
    expect(put.status, JSON.stringify(put.json)).toBe(200);
    expect(put.json).toEqual({ id: 'dana', ...profile });

    const got = await t.api('GET', '/v1/users/dana');
    expect(got.status).toBe(200);
    expect(got.json).toEqual({ id: 'dana', ...profile });
    // The user reads its own profile too.
    expect((await t.api('GET', '/v1/users/dana', undefined, asUser(userToken('dana')))).json).toEqual(got.json);

    // Replace, not merge: omitted fields become null.
    const again = await t.api('PUT', '/v1/users/dana', { email: 'dana@example.org' });
    expect(again.status).toBe(200);
    expect((await t.api('GET', '/v1/users/dana')).json).toEqual({
      id: 'dana',
      email: 'dana@example.org',
      phone: null,
      timezone: null,
      locale: null,
      webhookUrl: null,
      chatWebhookUrl: null,
    });

    // Ids are opaque strings: unicode and dots are fine, and travel percent-encoded.
    const odd = 'émile.o’brien@team';
    const path = `/v1/users/${encodeURIComponent(odd)}`;
    expect((await t.api('PUT', path, { locale: 'en' })).status).toBe(200);
    expect((await t.api('GET', path)).json).toMatchObject({ id: odd, locale: 'en' });

    expectError(await t.api('GET', '/v1/users/nobody-here'), 'HERALD_ERR_NOT_FOUND');
  });
});
