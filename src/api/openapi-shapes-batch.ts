/**
 * The answer of POST /v1/notifications/batch, and its request example, for the OpenAPI document
 * (src/api/openapi-shapes.ts is full). test/openapi.integration.test.ts parses a real answer with
 * this shape, strictly.
 */
import { z } from 'zod';
import { ERRORS, type ErrorCode } from '../core/errors.ts';

const accepted = z.strictObject({
  status: z.literal(202),
  id: z
    .string()
    .describe('The notification id (UUIDv7); the first one again when its idempotencyKey was used with the same body'),
  recipients: z.number().int().nullable().describe('How many users; null for a topic until fanned out'),
});

/** The codes an item can fail with: what POST /v1/notifications answers about its body. */
const ITEM_CODES = ['HERALD_ERR_VALIDATION', 'HERALD_ERR_IDEMPOTENCY_CONFLICT'] as const satisfies ErrorCode[];

const refused = z.strictObject({
  status: z
    .union(ITEM_CODES.map((c) => z.literal(ERRORS[c].status)))
    .describe('The status POST /v1/notifications would have answered'),
  error: z.strictObject({
    code: z.enum(ITEM_CODES),
    message: z.string(),
    details: z
      .unknown()
      .describe(
        'HERALD_ERR_VALIDATION: `[{"field", "message"}]`, fields named within the item; HERALD_ERR_IDEMPOTENCY_CONFLICT: `{"id"}` of the notification the key belongs to',
      ),
  }),
});

const shape = <E>(schema: z.ZodType, description: string, example: E) => ({ schema, description, example });

export const BATCH_EXAMPLES = {
  batchRequest: {
    notifications: [
      { to: ['alice'], category: 'comment.reply', title: 'New reply', idempotencyKey: 'reply-7' },
      { to: ['bob', 'carol'], category: 'order.shipped', priority: 'high', title: 'Shipped' },
      { to: [], category: 'comment.reply', title: 'Nobody' },
    ],
  },
} as const;

export const BATCH_SHAPES = {
  batchResults: shape(
    z.strictObject({ results: z.array(z.union([accepted, refused])) }),
    'One result per item, in order; the accepted items are durably stored, the others are not',
    {
      results: [
        { status: 202, id: '01a24ce0-002a-7000-8dde-a9b942d4282b', recipients: 1 },
        { status: 202, id: '01a24ce0-002a-7001-9c1e-5be2f1a0c3d4', recipients: 2 },
        {
          status: 400,
          error: {
            code: 'HERALD_ERR_VALIDATION',
            message: 'to: must name at least one user',
            details: [{ field: 'to', message: 'must name at least one user' }],
          },
        },
      ],
    },
  ),
} as const;
