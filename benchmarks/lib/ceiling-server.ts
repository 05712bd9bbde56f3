/**
 * The ceiling for `ingest`: a bare Fastify server that parses the JSON body and answers 202 with
 * a small JSON document — no validation, no store. Measured with the same load right beside
 * Herald, it shows what this machine can do at that moment (on a shared machine that moves).
 * Run as its own process: `node --import tsx benchmarks/lib/ceiling-server.ts` with PORT set.
 */
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.post('/v1/notifications', async (_req, reply) =>
  reply.status(202).send({ id: randomUUID(), status: 'accepted', recipients: 1 }),
);
app.get('/readyz', async () => ({ status: 'ok' }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
