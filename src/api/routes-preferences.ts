/**
 * A user's preferences (producer or that user): `PUT` replaces them whole, `GET` gives them back in
 * the same shape (the empty shape for a user who never set any). Validation: core/preference-input.ts;
 * what they mean: core/preferences.ts.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { idSchema, parseOrThrow } from '../core/input.ts';
import { parsePreferences, preferencesSchema } from '../core/preference-input.ts';
import { emptyPreferences } from '../core/preferences.ts';
import { assertMayActOn } from './auth.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { PARAMS } from './openapi-shapes.ts';
import { PREFERENCE_EXAMPLES, PREFERENCE_SHAPES } from './openapi-shapes-users.ts';
import type { ApiDeps } from './server.ts';

const userParams = z.object({ userId: idSchema });

export function preferenceRoutes(app: FastifyInstance, { store, decisionContexts }: ApiDeps): void {
  app.put(
    '/v1/users/:userId/preferences',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['users'],
        summary: "Replace the user's preferences: opt-outs per channel and per category, quiet hours",
        params: doc(PARAMS.userId),
        body: doc(preferencesSchema, { example: PREFERENCE_EXAMPLES.preferences }),
        response: { 200: ok(PREFERENCE_SHAPES.preferences), ...errorResponses(400, 401, 403) },
      },
    },
    async (req) => {
      const { userId } = parseOrThrow(userParams, req.params);
      assertMayActOn(req.caller, userId);
      const stored = await store.putPreferences(userId, parsePreferences(req.body));
      // The decider of this process reads them again for the next notification.
      decisionContexts?.forget(userId);
      return stored;
    },
  );

  app.get(
    '/v1/users/:userId/preferences',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['users'],
        summary: "The user's preferences (the empty shape if none were set)",
        params: doc(PARAMS.userId),
        response: { 200: ok(PREFERENCE_SHAPES.preferences), ...errorResponses(400, 401, 403) },
      },
    },
    async (req) => {
      const { userId } = parseOrThrow(userParams, req.params);
      assertMayActOn(req.caller, userId);
      return (await store.getPreferences(userId)) ?? emptyPreferences();
    },
  );
}
