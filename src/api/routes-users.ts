/** Users, user tokens and the in-app inbox. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { EgressPolicy } from '../channels/egress-policy.ts';
import { HeraldError } from '../core/errors.ts';
import {
  idSchema,
  parseOrThrow,
  parseReadSelection,
  parseUserProfile,
  readSelectionSchema,
  userProfileSchema,
} from '../core/input.ts';
import { assertMayActOn } from './auth.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { EXAMPLES, PARAMS, SHAPES } from './openapi-shapes.ts';
import type { ApiDeps } from './server.ts';

const userParams = z.object({ userId: idSchema });
/** POST /v1/users/{id}/tokens: `ttlSeconds` up to HERALD_MAX_TOKEN_TTL (default an hour, or the maximum if shorter). */
function tokenBodySchema(maxTokenTtl: number) {
  const fallback = Math.min(3600, maxTokenTtl);
  return z
    .strictObject({
      ttlSeconds: z.number().int().min(60).max(maxTokenTtl).default(fallback),
    })
    .default({ ttlSeconds: fallback });
}
const inboxQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  before: z.coerce.number().int().positive().optional(),
  unread: z.enum(['true', 'false']).optional(),
});

function userIdOf(params: unknown): string {
  return parseOrThrow(userParams, params).userId;
}

export function userRoutes(app: FastifyInstance, { store, auth, events, config, decisionContexts }: ApiDeps): void {
  // The same policy the providers connect under: a URL they would refuse is refused here, at once.
  const egress = new EgressPolicy(config.egressAllow);
  const checkDestination = (url: string) => egress.checkUrl(url);
  const tokenBody = tokenBodySchema(auth.maxTokenTtl);
  app.put(
    '/v1/users/:userId',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['users'],
        summary: 'Create or replace a user profile (contact points, time zone, locale)',
        params: doc(PARAMS.userId),
        body: doc(userProfileSchema, { example: EXAMPLES.userProfileRequest }),
        response: { 200: ok(SHAPES.profile), ...errorResponses(400, 401) },
      },
    },
    async (req) => parseAndSave(req.params, req.body),
  );

  async function parseAndSave(params: unknown, body: unknown) {
    const id = userIdOf(params);
    const saved = await store.upsertUser(parseUserProfile(id, body ?? {}, checkDestination));
    // The decider of this process reads the time zone again for the next notification.
    decisionContexts?.forget(id);
    return saved;
  }

  app.get(
    '/v1/users/:userId',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['users'],
        summary: 'A user profile',
        params: doc(PARAMS.userId),
        response: { 200: ok(SHAPES.profile), ...errorResponses(401, 403, 404) },
      },
    },
    async (req) => {
      const id = userIdOf(req.params);
      assertMayActOn(req.caller, id);
      const user = await store.getUser(id);
      if (!user) throw new HeraldError('HERALD_ERR_NOT_FOUND', `no user ${id}`);
      return user;
    },
  );

  app.post(
    '/v1/users/:userId/tokens',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['users'],
        summary: 'Issue a user token (HS256 JWT) for the real-time connection and the inbox',
        params: doc(PARAMS.userId),
        body: doc(tokenBody, { example: { ttlSeconds: 3600 } }),
        response: { 201: ok(SHAPES.userToken), ...errorResponses(400, 401) },
      },
    },
    async (req, reply) => {
      const id = userIdOf(req.params);
      const { ttlSeconds } = parseOrThrow(tokenBody, req.body ?? undefined);
      return reply.status(201).send(await auth.issueUserToken(id, ttlSeconds));
    },
  );

  app.get(
    '/v1/users/:userId/inbox',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['inbox'],
        summary: "A page of the user's in-app inbox, newest first",
        params: doc(PARAMS.userId),
        querystring: doc(inboxQuery),
        response: { 200: ok(SHAPES.inboxPage), ...errorResponses(400, 401, 403) },
      },
    },
    async (req) => {
      const id = userIdOf(req.params);
      assertMayActOn(req.caller, id);
      const q = parseOrThrow(inboxQuery, req.query);
      return store.listInbox(id, { limit: q.limit, before: q.before ?? null, unread: q.unread === 'true' });
    },
  );

  app.post(
    '/v1/users/:userId/inbox/read',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['inbox'],
        summary: 'Mark inbox items read: {"seqs": [..]}, {"upToSeq": n} or {"all": true}',
        params: doc(PARAMS.userId),
        body: doc(readSelectionSchema, { example: { upToSeq: 2 } }),
        response: { 200: ok(SHAPES.unreadCount), ...errorResponses(400, 401, 403) },
      },
    },
    async (req) => {
      const id = userIdOf(req.params);
      assertMayActOn(req.caller, id);
      const unreadCount = await store.markRead(id, parseReadSelection(req.body));
      events.emit('inbox:unread', { userId: id, unreadCount });
      return { unreadCount };
    },
  );
}
