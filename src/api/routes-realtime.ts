/**
 * HTTP side of real time: presence, and a plain GET of /v1/realtime (the WebSocket upgrade itself
 * is taken by the gateway before routing; see src/realtime/gateway.ts and docs/realtime.md).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { HeraldError } from '../core/errors.ts';
import { idSchema, parseOrThrow } from '../core/input.ts';
import { assertMayActOn } from './auth.ts';
import { doc, errorResponses } from './docs.ts';
import type { ApiDeps } from './server.ts';

export function realtimeRoutes(app: FastifyInstance, { presence }: ApiDeps): void {
  app.get(
    '/v1/realtime',
    {
      schema: {
        tags: ['real time'],
        summary: 'WebSocket: ?token=<user token>&after=<seq>. Protocol in docs/realtime.md',
        querystring: doc(z.object({ token: z.string(), after: z.number().int().nonnegative().optional() })),
        response: { ...errorResponses(426) },
      },
    },
    async () => {
      throw new HeraldError('HERALD_ERR_UPGRADE_REQUIRED', 'connect with a WebSocket client (Upgrade: websocket)');
    },
  );

  app.get(
    '/v1/users/:userId/presence',
    {
      config: { auth: 'producer-or-user' },
      schema: {
        tags: ['real time'],
        summary: 'Whether a user is connected, on how many sockets, and when last seen',
        response: {
          200: doc(
            z.object({ userId: z.string(), online: z.boolean(), sockets: z.number(), lastSeen: z.string().nullable() }),
          ),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (req) => {
      const { userId } = parseOrThrow(z.object({ userId: idSchema }), req.params);
      assertMayActOn(req.caller, userId);
      return { userId, ...(await presence.get(userId)) };
    },
  );
}
