/**
 * POST /v1/notifications/batch (API.md Part 2, "Topics and batches"): up to 1,000 notifications in
 * one request, answered one result per item, in order.
 *
 * Promises: each item is validated as POST /v1/notifications validates a body (an invalid item is
 * answered `400` with that error, and not stored); the valid ones are committed together, in one
 * transaction, before the answer — all of them or none. When they cannot be (ingest saturated: 429
 * HERALD_ERR_OVERLOADED; the store failed: 503 HERALD_ERR_UNAVAILABLE) the whole request is refused
 * and nothing of it is stored. An item's `idempotencyKey` is the Idempotency-Key header of a single
 * POST: the same keys, hashed the same way, in the same table.
 */
import type { FastifyInstance } from 'fastify';
import { type BatchItem, batchRequestSchema, parseBatchRequest } from '../core/batch-input.ts';
import { HeraldError } from '../core/errors.ts';
import type { AcceptOutcome } from '../core/types.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { BATCH_EXAMPLES, BATCH_SHAPES } from './openapi-shapes-batch.ts';
import type { ApiDeps } from './server.ts';

export function batchRoutes(app: FastifyInstance, { ingest, config }: ApiDeps): void {
  app.post(
    '/v1/notifications/batch',
    {
      bodyLimit: config.maxBatchBodyBytes,
      config: { auth: 'producer' },
      schema: {
        tags: ['notifications'],
        summary: 'Send up to 1,000 notifications in one request',
        description:
          'One result per item, in order: `202` with the id, or the error POST /v1/notifications would have answered for that body (`400`, `409`). The valid items are committed together before the answer; a `429` or `503` refuses the whole request and stores none of it. The body may be up to `HERALD_MAX_BATCH_BODY_BYTES` (16 MiB by default).',
        body: doc(batchRequestSchema, { example: BATCH_EXAMPLES.batchRequest }),
        response: {
          200: ok(BATCH_SHAPES.batchResults),
          ...errorResponses(400, 401, 413, 415, 'HERALD_ERR_RATE_LIMITED', 'HERALD_ERR_OVERLOADED', 503),
        },
      },
    },
    async (req) => {
      const items = parseBatchRequest(req.body);
      const valid = items.flatMap((it) => (it.ok ? [it] : []));
      const outcomes = valid.length ? await ingest.submitAll(valid) : [];
      let k = 0;
      return { results: items.map((it) => (it.ok ? resultOf(outcomes[k++] as AcceptOutcome) : failed(it))) };
    },
  );
}

function resultOf(o: AcceptOutcome) {
  if (o.kind === 'conflict') {
    const e = new HeraldError(
      'HERALD_ERR_IDEMPOTENCY_CONFLICT',
      'this idempotencyKey was used with another body within 24 hours',
      { details: { id: o.existingId } },
    );
    return { status: e.status, ...e.toJSON() };
  }
  return { status: 202, id: o.answer.id, recipients: o.answer.recipients };
}

function failed(item: Extract<BatchItem, { ok: false }>) {
  return { status: item.error.status, ...item.error.toJSON() };
}
