/**
 * POST /v1/maintenance/retention (producer key): one retention run now, for operators and tests —
 * the same run the scheduler role makes every HERALD_RETENTION_EVERY (docs/architecture.md
 * "Retention"). Answers what it removed. Runs may overlap safely (each batch locks what it removes).
 */
import type { FastifyInstance } from 'fastify';
import { errorResponses, ok } from './docs.ts';
import { RETENTION_SHAPE } from './openapi-retention.ts';
import type { ApiDeps } from './server.ts';

export function retentionRoutes(app: FastifyInstance, { store, config }: ApiDeps): void {
  app.post(
    '/v1/maintenance/retention',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['operations'],
        summary: 'Remove expired notifications now (what the scheduler does every HERALD_RETENTION_EVERY)',
        response: { 200: ok(RETENTION_SHAPE), ...errorResponses(401) },
      },
    },
    async () => store.runRetention({ defaultRetentionMs: config.retentionMs }),
  );
}
