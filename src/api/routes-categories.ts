/**
 * Category policies (producer): `PUT` replaces the category's policy whole, `GET` gives it back,
 * `DELETE` removes it (the category's notifications then get the usual defaults). Validation:
 * core/category-policy-input.ts; what a policy does: docs/preferences.md. Written through the
 * process's policy cache, so a change applies at once to what this process accepts next.
 */
import type { FastifyInstance } from 'fastify';
import { categoryPolicySchema, categoryPolicyView, parseCategoryPolicy } from '../core/category-policy-input.ts';
import { HeraldError } from '../core/errors.ts';
import { parseOrThrow } from '../core/input.ts';
import { templateCategoryParams } from '../core/template-input.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { PARAMS } from './openapi-shapes.ts';
import { CATEGORY_EXAMPLES, CATEGORY_SHAPES } from './openapi-shapes-categories.ts';
import type { ApiDeps } from './server.ts';

const categoryOf = (params: unknown) => parseOrThrow(templateCategoryParams, params).category;

export function categoryRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const store = deps.policies ?? deps.store;

  app.put(
    '/v1/categories/:category',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['categories'],
        summary: "Create or replace a category's policy: defaults, required, quiet hours, digest, caps, ttl",
        params: doc(PARAMS.category),
        body: doc(categoryPolicySchema, { example: CATEGORY_EXAMPLES.policy }),
        response: { 200: ok(CATEGORY_SHAPES.policy), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const category = categoryOf(req.params);
      return categoryPolicyView(await store.putCategoryPolicy(parseCategoryPolicy(category, req.body)));
    },
  );

  app.get(
    '/v1/categories/:category',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['categories'],
        summary: "A category's policy",
        params: doc(PARAMS.category),
        response: { 200: ok(CATEGORY_SHAPES.policy), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const category = categoryOf(req.params);
      const p = await store.getCategoryPolicy(category);
      if (!p) throw new HeraldError('HERALD_ERR_NOT_FOUND', `no policy for category ${category}`);
      return categoryPolicyView(p);
    },
  );

  app.delete(
    '/v1/categories/:category',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['categories'],
        summary: "Delete a category's policy (its notifications then get the usual defaults)",
        params: doc(PARAMS.category),
        response: { 204: { description: 'Deleted', type: 'null' }, ...errorResponses(400, 401, 404) },
      },
    },
    async (req, reply) => {
      const category = categoryOf(req.params);
      if (!(await store.deleteCategoryPolicy(category))) {
        throw new HeraldError('HERALD_ERR_NOT_FOUND', `no policy for category ${category}`);
      }
      return reply.status(204).send();
    },
  );
}
