/** POST /v1/notifications, GET /v1/notifications/{id}, POST /v1/notifications/{id}/cancel. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { HeraldError } from '../core/errors.ts';
import {
  idempotencyKeySchema,
  notificationRequestSchema,
  parseNotificationRequest,
  parseOrThrow,
} from '../core/input.ts';
import { notificationStatus } from '../core/notification-status.ts';
import type { DeliveryState, DeliveryView, NotificationView } from '../core/types.ts';
import { doc, errorResponses, ok } from './docs.ts';
import { EXAMPLES, PARAMS, SHAPES } from './openapi-shapes.ts';
import type { ApiDeps } from './server.ts';

const idParams = z.object({ id: z.string() });
const getQuery = z.strictObject({
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  timelineCursor: z.string().max(200).optional().meta({
    description: 'The `nextTimelineCursor` of the previous answer: the next 1,000 timeline events',
  }),
});

export function notificationRoutes(app: FastifyInstance, { ingest, store }: ApiDeps): void {
  app.post(
    '/v1/notifications',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['notifications'],
        summary: 'Send a notification to users',
        description: '202 only after the notification and its deliveries are committed.',
        headers: doc(
          z.object({
            'idempotency-key': idempotencyKeySchema.optional().meta({
              description: 'The same key with the same body within 24 h answers the first answer again',
              examples: [EXAMPLES.idempotencyKey],
            }),
          }),
        ),
        body: doc(notificationRequestSchema, { example: EXAMPLES.notificationRequest }),
        response: {
          202: ok(SHAPES.accepted, {
            'idempotent-replayed': {
              type: 'string',
              enum: ['true'],
              description: 'Set when this is a replayed answer',
            },
          }),
          ...errorResponses(
            400,
            401,
            'HERALD_ERR_IDEMPOTENCY_CONFLICT',
            413,
            415,
            'HERALD_ERR_RATE_LIMITED',
            'HERALD_ERR_OVERLOADED',
            503,
          ),
        },
      },
    },
    async (req, reply) => {
      const rawKey = req.headers['idempotency-key'];
      const key = rawKey === undefined ? null : parseKey(rawKey);
      const request = parseNotificationRequest(req.body);
      const outcome = await ingest.submit(request, key);
      if (outcome.kind === 'conflict') {
        throw new HeraldError(
          'HERALD_ERR_IDEMPOTENCY_CONFLICT',
          'this Idempotency-Key was used with another body within 24 hours',
          { details: { id: outcome.existingId } },
        );
      }
      if (outcome.kind === 'replayed') void reply.header('idempotent-replayed', 'true');
      return reply.status(202).send(outcome.answer);
    },
  );

  app.get(
    '/v1/notifications/:id',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['notifications'],
        summary: 'A notification with its deliveries and timeline',
        params: doc(PARAMS.notificationId),
        querystring: doc(getQuery),
        response: { 200: ok(SHAPES.notification), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const { id } = idParams.parse(req.params);
      const q = parseOrThrow(getQuery, req.query);
      const v = await store.getNotification(id, {
        cursor: q.cursor ?? null,
        limit: q.limit ?? 1000,
        timelineCursor: q.timelineCursor ?? null,
      });
      if (!v) throw new HeraldError('HERALD_ERR_NOT_FOUND', `no notification ${id}`);
      return presentNotification(v);
    },
  );

  app.post(
    '/v1/notifications/:id/cancel',
    {
      config: { auth: 'producer' },
      schema: {
        tags: ['notifications'],
        summary: 'Cancel a notification while nothing of it has been sent',
        params: doc(PARAMS.notificationId),
        response: {
          200: ok(SHAPES.cancelled),
          ...errorResponses(401, 404, 'HERALD_ERR_NOT_CANCELLABLE'),
        },
      },
    },
    async (req) => {
      const { id } = idParams.parse(req.params);
      const r = await store.cancel(id);
      if (r === 'not_found') throw new HeraldError('HERALD_ERR_NOT_FOUND', `no notification ${id}`);
      if (r === 'not_cancellable') {
        throw new HeraldError('HERALD_ERR_NOT_CANCELLABLE', 'some delivery of this notification has already started');
      }
      return { id, status: 'cancelled' };
    },
  );
}

function parseKey(raw: string | string[]): string {
  if (Array.isArray(raw)) {
    throw new HeraldError('HERALD_ERR_VALIDATION', 'Idempotency-Key: send it once', {
      details: [{ field: 'Idempotency-Key', message: 'send it once' }],
    });
  }
  const r = idempotencyKeySchema.safeParse(raw);
  if (!r.success) {
    const message = r.error.issues[0]?.message ?? 'invalid';
    throw new HeraldError('HERALD_ERR_VALIDATION', `Idempotency-Key: ${message}`, {
      details: [{ field: 'Idempotency-Key', message }],
    });
  }
  return r.data;
}

/** API.md's delivery statuses; the stored state is kept as `state` for the curious. */
const API_STATUS: Record<DeliveryState, string> = {
  pending: 'pending',
  processing: 'pending',
  sent: 'sent',
  delivered: 'delivered',
  read: 'read',
  failed: 'failed',
  dead: 'dead',
  cancelled: 'skipped',
  skipped: 'skipped',
};

function presentDelivery(d: DeliveryView) {
  return {
    id: d.id,
    userId: d.userId,
    channel: d.channel,
    status: API_STATUS[d.status],
    state: d.status,
    attempts: d.attempts,
    lastError: d.lastError,
    reason: d.reason,
    nextAttemptAt: d.nextAttemptAt,
    updatedAt: d.updatedAt,
  };
}

export function presentNotification(v: NotificationView) {
  return {
    id: v.id,
    category: v.category,
    priority: v.priority,
    createdAt: v.createdAt,
    status: notificationStatus(v, new Date()),
    channels: v.channels,
    steps: v.steps,
    title: v.title,
    body: v.body,
    data: v.data,
    sendAt: v.sendAt,
    groupKey: v.groupKey,
    recipients: v.recipients,
    counts: v.stateCounts,
    deliveries: v.deliveries.map(presentDelivery),
    nextCursor: v.nextCursor,
    timeline: v.timeline,
    nextTimelineCursor: v.nextTimelineCursor,
  };
}
