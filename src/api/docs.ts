/** The OpenAPI document (/openapi.json) and its UI (/docs), built from the routes' zod schemas. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ERRORS } from '../core/errors.ts';

/** A zod schema as JSON Schema for the document (input shape: defaults optional). */
export function doc(schema: z.ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-7' }) as Record<string, unknown>;
}

const errorBody = doc(
  z.object({
    error: z.object({
      code: z.enum(Object.keys(ERRORS) as [string, ...string[]]),
      message: z.string(),
      details: z.unknown(),
    }),
  }),
);

export function errorResponses(...statuses: number[]): Record<number, unknown> {
  return Object.fromEntries(statuses.map((s) => [s, { description: describe(s), ...errorBody }]));
}

function describe(status: number): string {
  const codes = Object.entries(ERRORS)
    .filter(([, e]) => e.status === status)
    .map(([c]) => c);
  return codes.join(', ');
}

export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Herald API',
        version: '1',
        description: 'Notification delivery: send, track, and read notifications. See docs/ in the repository.',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'Producer API key (HERALD_API_KEYS)' },
        },
      },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
