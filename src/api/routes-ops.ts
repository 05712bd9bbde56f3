/**
 * Operations: health, readiness, metrics, dead letters. `/healthz` and `/readyz` need no
 * credentials, so they say whether the store answers and which kind it is, never where it is:
 * the reason it does not answer (which names its host and port) goes to the log.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { HeraldError } from '../core/errors.ts';
import { parseOrThrow } from '../core/input.ts';
import { doc, errorResponses, ok } from './docs.ts';
import type { Metrics } from './metrics.ts';
import { PARAMS, SHAPES } from './openapi-shapes.ts';
import type { ApiDeps } from './server.ts';

const deadLetterQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(300).optional(),
});

const METRICS = {
  description: 'Prometheus text exposition (the metrics are listed in docs/api.md)',
  content: {
    'text/plain': {
      schema: { type: 'string' },
      example:
        '# TYPE herald_notifications_accepted_total counter\nherald_notifications_accepted_total{lane="normal"} 42\n',
    },
  },
};

// Typed wide: the handler answers 503 itself, which a literal { 200: … } would not allow.
const READY: Record<number, unknown> = { 200: ok(SHAPES.ready), ...errorResponses(503) };

export function opsRoutes(
  app: FastifyInstance,
  { store, bus, logger, failureLog, routes, readiness }: ApiDeps,
  metrics: Metrics,
): void {
  const log = failureLog ?? logger;
  app.get(
    '/healthz',
    { schema: { tags: ['operations'], summary: 'The process is alive', response: { 200: ok(SHAPES.health) } } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        summary: 'The store and the bus are reachable',
        response: READY,
      },
    },
    async (_req, reply) => {
      let what = `the ${store.kind} store`;
      try {
        await store.ping();
        for (const [name, ping] of Object.entries(readiness ?? {})) {
          what = name;
          await ping();
        }
        return { status: 'ok', store: store.kind, bus: bus.kind };
      } catch (e) {
        log.error({ err: e }, `readiness check: ${what} does not answer`);
        const error = new HeraldError('HERALD_ERR_UNAVAILABLE', `${what} does not answer (see the log)`, {
          retryAfter: 1,
        });
        return reply.status(503).header('retry-after', '1').send(error.toJSON());
      }
    },
  );

  app.get(
    '/metrics',
    { schema: { tags: ['operations'], summary: 'Prometheus metrics', response: { 200: METRICS } } },
    async (_req, reply) => {
      void reply.header('content-type', metrics.contentType);
      return reply.send(await metrics.render());
    },
  );

  app.get(
    '/v1/providers',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['operations'],
        summary: "Each channel's providers: fallback order, circuit breaker, rate limit, counts",
        response: { 200: ok(SHAPES.providers), ...errorResponses(401) },
      },
    },
    async () => ({ items: [...(routes?.values() ?? [])].flatMap((r) => r.status()) }),
  );

  app.get(
    '/v1/dead-letters',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['dead letters'],
        summary: 'Deliveries that failed for good (permanent error) or ran out of attempts',
        querystring: doc(deadLetterQuery),
        response: { 200: ok(SHAPES.deadLetters), ...errorResponses(400, 401) },
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
        params: doc(PARAMS.deliveryId),
        response: {
          200: ok(SHAPES.replayed),
          ...errorResponses(401, 404, 'HERALD_ERR_NOT_REPLAYABLE'),
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
