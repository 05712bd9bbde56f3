/**
 * Operations: health, readiness, metrics, dead letters. `/healthz` and `/readyz` need no
 * credentials, so they say whether the store answers and which kind it is, never where it is:
 * the reason it does not answer (which names its host and port) goes to the log.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { HeraldError } from '../core/errors.ts';
import { parseOrThrow } from '../core/input.ts';
import { doc, errorResponses } from './docs.ts';
import type { Metrics } from './metrics.ts';
import type { ApiDeps } from './server.ts';

const deadLetterQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(300).optional(),
});

export function opsRoutes(app: FastifyInstance, { store, bus, logger, failureLog }: ApiDeps, metrics: Metrics): void {
  const log = failureLog ?? logger;
  app.get('/healthz', { schema: { tags: ['operations'], summary: 'The process is alive' } }, async () => ({
    status: 'ok',
  }));

  app.get(
    '/readyz',
    { schema: { tags: ['operations'], summary: 'The store and the bus are reachable' } },
    async (_req, reply) => {
      try {
        await store.ping();
        return { status: 'ok', store: store.kind, bus: bus.kind };
      } catch (e) {
        log.error({ err: e }, 'readiness check: the store does not answer');
        const error = new HeraldError(
          'HERALD_ERR_UNAVAILABLE',
          `the ${store.kind} store does not answer (see the log)`,
          {
            retryAfter: 1,
          },
        );
        return reply.status(503).header('retry-after', '1').send(error.toJSON());
      }
    },
  );

  app.get('/metrics', { schema: { tags: ['operations'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    void reply.header('content-type', metrics.contentType);
    return reply.send(await metrics.render());
  });

  app.get(
    '/v1/dead-letters',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['dead letters'],
        summary: 'Deliveries that failed for good (permanent error) or ran out of attempts',
        querystring: doc(deadLetterQuery),
        response: { ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const q = parseOrThrow(deadLetterQuery, req.query);
      return store.listDeadLetters({ limit: q.limit, cursor: q.cursor ?? null });
    },
  );

  app.post(
    '/v1/dead-letters/:id/replay',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['dead letters'],
        summary: 'Send a dead letter again (attempts start over)',
        response: {
          200: doc(z.object({ id: z.string(), status: z.literal('pending') })),
          ...errorResponses(401, 404, 409),
        },
      },
    },
    async (req) => {
      const { id } = z.object({ id: z.string() }).parse(req.params);
      const r = await store.replay(id);
      if (r.result === 'not_found') throw new HeraldError('HERALD_ERR_NOT_FOUND', `no dead letter ${id}`);
      if (r.result !== 'replayed')
        throw new HeraldError('HERALD_ERR_NOT_REPLAYABLE', `delivery ${id} is not failed or dead`);
      await bus.publish([{ id, lane: r.lane, runAt: new Date() }]);
      return { id, status: 'pending' };
    },
  );
}
