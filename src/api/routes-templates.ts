/** Templates per category: store, read, delete, and preview a rendering (all producer-only). */
import type { FastifyInstance } from 'fastify';
import { HeraldError } from '../core/errors.ts';
import { parseOrThrow } from '../core/input.ts';
import type { StoredTemplate } from '../core/ports.ts';
import { parseTemplate, previewRequestSchema, templateCategoryParams, templateSchema } from '../core/template-input.ts';
import { render, TemplateRenderError } from '../core/template-render.ts';
import type { JsonValue } from '../core/types.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { EXAMPLES, PARAMS, SHAPES } from './openapi-shapes.ts';
import type { ApiDeps } from './server.ts';

const categoryOf = (params: unknown) => parseOrThrow(templateCategoryParams, params).category;

const view = (t: StoredTemplate) => ({
  category: t.category,
  defaultLocale: t.defaultLocale,
  locales: t.locales,
  updatedAt: t.updatedAt.toISOString(),
});

export function templateRoutes(app: FastifyInstance, deps: ApiDeps): void {
  // Through the delivery cache when there is one, so this process renders with a change at once.
  const store = deps.templates ?? deps.store;
  async function find(category: string): Promise<StoredTemplate> {
    const t = await store.getTemplate(category);
    if (!t) throw new HeraldError('HERALD_ERR_NOT_FOUND', `no template for category ${category}`);
    return t;
  }

  app.put(
    '/v1/templates/:category',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['templates'],
        summary: "Create or replace a category's Liquid templates, per locale and channel",
        params: doc(PARAMS.category),
        body: doc(templateSchema, { example: EXAMPLES.templateRequest }),
        response: { 200: ok(SHAPES.template), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const category = categoryOf(req.params);
      return view(await store.putTemplate(category, parseTemplate(req.body)));
    },
  );

  app.get(
    '/v1/templates/:category',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['templates'],
        summary: "A category's templates",
        params: doc(PARAMS.category),
        response: { 200: ok(SHAPES.template), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => view(await find(categoryOf(req.params))),
  );

  app.delete(
    '/v1/templates/:category',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['templates'],
        summary: "Delete a category's templates (its notifications then carry their own title and body)",
        params: doc(PARAMS.category),
        response: { 204: { description: 'Deleted', type: 'null' }, ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const category = categoryOf(req.params);
      if (!(await store.deleteTemplate(category))) {
        throw new HeraldError('HERALD_ERR_NOT_FOUND', `no template for category ${category}`);
      }
      return reply.status(204).send();
    },
  );

  app.post(
    '/v1/templates/:category/preview',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['templates'],
        summary: "Render the category's stored template for one recipient and channel, without sending",
        params: doc(PARAMS.category),
        body: doc(previewRequestSchema, { example: EXAMPLES.previewRequest }),
        response: {
          200: ok(SHAPES.preview),
          ...errorResponses(400, 401, 404, 'HERALD_ERR_TEMPLATE_RENDER'),
        },
      },
    },
    async (req) => {
      const category = categoryOf(req.params);
      const p = parseOrThrow(previewRequestSchema, req.body ?? {});
      const template = await find(category);
      try {
        return await render(template, {
          locale: p.locale ?? p.user.locale ?? null,
          channel: p.channel,
          data: p.data as Record<string, JsonValue> | null,
          user: { id: p.user.id ?? null, locale: p.user.locale ?? p.locale ?? null, timezone: p.user.timezone ?? null },
          notification: { id: null, category, priority: p.priority, title: p.title, body: p.body },
        });
      } catch (e) {
        if (!(e instanceof TemplateRenderError)) throw e;
        throw new HeraldError('HERALD_ERR_TEMPLATE_RENDER', e.message, {
          cause: e,
          details: [{ field: e.field, message: e.message.slice(e.field.length + 2) }],
        });
      }
    },
  );
}
