/**
 * Templates over HTTP: PUT stores a validated template (400 naming the place of a parse error, with
 * line and column), GET gives it back, DELETE removes it (404 once absent), preview renders it for a
 * locale and channel in the documented order, a render over a bound is 422, and every route is
 * producer-only (a user token is 401).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, SHAPES } from '../src/api/openapi-shapes.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';

const TEMPLATE = EXAMPLES.templateRequest;
const DATA = { actor: 'Bob', excerpt: 'Looks <good> to me' };

describe('templates over HTTP', () => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ roles: ['api'] });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('PUT stores, GET gives back, DELETE removes (then 404 for GET, DELETE and preview)', async () => {
    expect((await t.api('GET', '/v1/templates/comment.reply')).status).toBe(404);
    const put = await t.api('PUT', '/v1/templates/comment.reply', TEMPLATE);
    expect(put.status).toBe(200);
    expect(SHAPES.template.schema.safeParse(put.json).success).toBe(true);
    expect(put.json).toMatchObject({ category: 'comment.reply', ...TEMPLATE });

    const got = await t.api('GET', '/v1/templates/comment.reply');
    expect(got.status).toBe(200);
    expect(got.json).toEqual(put.json);

    const replaced = await t.api('PUT', '/v1/templates/comment.reply', {
      defaultLocale: 'de',
      locales: { de: { title: 'Neu' } },
    });
    expect(replaced.status).toBe(200);
    expect((await t.api('GET', '/v1/templates/comment.reply')).json.locales).toEqual({ de: { title: 'Neu' } });

    const deleted = await t.api('DELETE', '/v1/templates/comment.reply');
    expect(deleted.status).toBe(204);
    expect((await t.api('GET', '/v1/templates/comment.reply')).status).toBe(404);
    expect((await t.api('DELETE', '/v1/templates/comment.reply')).status).toBe(404);
    const preview = await t.api('POST', '/v1/templates/comment.reply/preview', { data: DATA });
    expect(preview.status).toBe(404);
    expect(preview.json.error.code).toBe('HERALD_ERR_NOT_FOUND');
  });

  it('PUT of a template that does not parse → 400 naming the place, line and column; nothing stored', async () => {
    const bad = structuredClone(TEMPLATE) as any;
    bad.locales.de.email = { subject: 'Antwort von\n  {{ data.actor ' };
    const r = await t.api('PUT', '/v1/templates/order.shipped', bad);
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('HERALD_ERR_VALIDATION');
    expect(r.json.error.details).toEqual([
      { field: 'locales.de.email.subject', message: expect.stringMatching(/not closed.*line 2, column 3/) },
    ]);
    expect((await t.api('GET', '/v1/templates/order.shipped')).status).toBe(404);
  });

  it('PUT refuses an unknown filter, a defaultLocale that is not a locale, a bad category', async () => {
    const r = await t.api('PUT', '/v1/templates/order.shipped', {
      defaultLocale: 'fr',
      locales: { en: { body: '{{ data.x | exec }}' } },
    });
    expect(r.status).toBe(400);
    expect(r.json.error.details.map((d: { field: string }) => d.field)).toEqual(['defaultLocale', 'locales.en.body']);
    const badCategory = await t.api('PUT', '/v1/templates/not a category', TEMPLATE);
    expect(badCategory.status).toBe(400);
    expect(badCategory.json.error.details[0].field).toBe('category');
  });

  it('preview renders field by field: user locale, then default locale, then the own title/body', async () => {
    expect((await t.api('PUT', '/v1/templates/comment.reply', TEMPLATE)).status).toBe(200);
    const preview = (body: unknown) => t.api('POST', '/v1/templates/comment.reply/preview', body);

    const german = await preview(EXAMPLES.previewRequest);
    expect(german.status).toBe(200);
    expect(german.json).toEqual(SHAPES.preview.example);

    const english = await preview({ channel: 'email', data: DATA, user: { id: 'bob', locale: 'en-GB' } });
    expect(english.json).toEqual({
      title: 'Bob replied',
      body: 'Looks <good> to me',
      email: { subject: 'New reply from Bob', html: '<p>Looks &lt;good&gt; to me</p>', text: 'Looks <good> to me' },
    });

    const japanese = await preview({ locale: 'ja', channel: 'sms', data: { actor: 'Bob', excerpt: 'x'.repeat(150) } });
    expect(japanese.json.sms.text).toBe(`Bob: ${'x'.repeat(97)}...`);

    // A template with no title anywhere: the notification's own.
    await t.api('PUT', '/v1/templates/billing.invoice', {
      defaultLocale: 'en',
      locales: { en: { body: 'Due {{ data.due }}' } },
    });
    const own = await t.api('POST', '/v1/templates/billing.invoice/preview', {
      channel: 'in_app',
      data: { due: '2026-12-31' },
      title: 'Invoice ready',
    });
    expect(own.json).toEqual({ title: 'Invoice ready', body: 'Due 2026-12-31' });
  });

  it('preview that exceeds a render bound → 422 HERALD_ERR_TEMPLATE_RENDER naming the field, quickly', async () => {
    await t.api('PUT', '/v1/templates/bomb', {
      defaultLocale: 'en',
      locales: { en: { title: 'ok', email: { html: '{% for i in (1..100000000) %}x{% endfor %}' } } },
    });
    const started = Date.now();
    const r = await t.api('POST', '/v1/templates/bomb/preview', { channel: 'email' });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(r.status).toBe(422);
    expect(r.json.error.code).toBe('HERALD_ERR_TEMPLATE_RENDER');
    expect(r.json.error.details[0].field).toBe('locales.en.email.html');
    // The server is fine afterwards.
    expect((await t.api('POST', '/v1/templates/bomb/preview', { channel: 'in_app' })).json).toEqual({
      title: 'ok',
      body: null,
    });
  });

  it('every template route is producer-only: a user token is 401, no credentials 401', async () => {
    const { json: token } = await t.api('POST', '/v1/users/alice/tokens');
    const asUser = { authorization: `Bearer ${token.token}` };
    const calls: [string, string, unknown][] = [
      ['PUT', '/v1/templates/comment.reply', TEMPLATE],
      ['GET', '/v1/templates/comment.reply', undefined],
      ['DELETE', '/v1/templates/comment.reply', undefined],
      ['POST', '/v1/templates/comment.reply/preview', { data: DATA }],
    ];
    for (const [method, path, body] of calls) {
      expect((await t.api(method, path, body, asUser)).status, `${method} ${path} as a user`).toBe(401);
      expect((await t.api(method, path, body, { authorization: '' })).status, `${method} ${path} anonymous`).toBe(401);
    }
    expect((await t.api('GET', '/v1/templates/comment.reply')).status).toBe(200);
  });
});
