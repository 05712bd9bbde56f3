/**
 * HTTP side of real time: presence, and a plain GET of /v1/realtime (the WebSocket upgrade itself
 * is taken by the gateway before routing; see src/realtime/gateway.ts and docs/realtime.md).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { HeraldError } from '../core/errors.ts';
import { idSchema, parseOrThrow } from '../core/input.ts';
import { assertMayActOn } from './auth.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { PARAMS, SHAPES } from './openapi-shapes.ts';
import type { ApiDeps } from './server.ts';

export function realtimeRoutes(app: FastifyInstance, { presence }: ApiDeps): void {
  app.get(
    '/v1/realtime',
    {
      schema: {
        tags: ['real time'],
        summary: 'WebSocket: ?token=<user token>&after=<seq>. Protocol in docs/realtime.md',
        description:
          'Upgrades to a WebSocket. A bad or expired token is refused with `401` at the upgrade (or close ' +
          'code `4401`), a user over `HERALD_MAX_SOCKETS_PER_USER` sockets with `429` (or `4429`). The ' +
          'server sends `ready`, then every notification with `seq > after`, oldest first, then live ones. ' +
          'A plain GET (no Upgrade) is answered `426`.',
        security: [{ realtimeToken: [] }],
        querystring: doc(
          z.object({
            token: z.string().meta({ description: 'A user token' }),
            after: z
              .number()
              .int()
              .nonnegative()
              .optional()
              .meta({ description: 'Resume after this seq (replays what was missed)', examples: [41] }),
          }),
        ),
        response: {
          101: { type: 'null', description: 'Switching Protocols: the WebSocket is open; its first frame is `ready`' },
          ...errorResponses('HERALD_ERR_VALIDATION', 401, 426, 'HERALD_ERR_TOO_MANY_CONNECTIONS'),
        },
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
        params: doc(PARAMS.userId),
        response: {
          200: ok(SHAPES.presence),
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
