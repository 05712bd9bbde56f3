/**
 * CORS for browser clients: apps call the inbox API with a user token from their own origin.
 * Credentials are bearer tokens, never cookies, so allowing any origin exposes nothing a token
 * does not already grant. Preflights are answered here, before authentication.
 */
import type { FastifyInstance } from 'fastify';

const ALLOW_HEADERS = 'authorization, content-type, idempotency-key';
const ALLOW_METHODS = 'GET, POST, PUT, DELETE, OPTIONS';
const EXPOSE_HEADERS = 'retry-after, idempotent-replayed';

export function registerCors(app: FastifyInstance): void {
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin;
    if (!origin) return;
    void reply.header('access-control-allow-origin', '*');
    void reply.header('access-control-expose-headers', EXPOSE_HEADERS);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      void reply.header('access-control-allow-methods', ALLOW_METHODS);
      void reply.header('access-control-allow-headers', ALLOW_HEADERS);
      void reply.header('access-control-max-age', '86400');
      return reply.status(204).send();
    }
  });
}
