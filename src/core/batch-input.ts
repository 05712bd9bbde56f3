/**
 * Validation of POST /v1/notifications/batch (API.md Part 2, "Topics and batches"): the envelope
 * `{"notifications": [...]}` as a whole, then each item alone, with the very code that validates
 * POST /v1/notifications (parseNotificationRequest) — so every field a single notification takes
 * is taken by a batch item, with the same rules and the same error details.
 */
import { z } from 'zod';
import { HeraldError, validationError } from './errors.ts';
import { idempotencyKeySchema, issuesOf, notificationRequestSchema, parseNotificationRequest } from './input.ts';
import type { NotificationRequest } from './types.ts';

/** Most items in one batch. */
export const MAX_BATCH_ITEMS = 1_000;

/** The envelope. Items are checked one by one afterwards: a bad item fails alone. */
const batchEnvelopeSchema = z.strictObject({
  notifications: z
    .array(z.unknown())
    .min(1, 'must hold at least one notification')
    .max(MAX_BATCH_ITEMS, `at most ${MAX_BATCH_ITEMS} notifications; split the batch`),
});

/** What the OpenAPI document shows for a batch: each item is a POST /v1/notifications body and its key. */
export const batchRequestSchema = z.strictObject({
  notifications: z
    .array(
      notificationRequestSchema.extend({
        idempotencyKey: idempotencyKeySchema.nullable().optional().meta({
          description:
            'As the Idempotency-Key header of POST /v1/notifications: the same key with the same body within 24 h answers the first answer again',
        }),
      }),
    )
    .min(1)
    .max(MAX_BATCH_ITEMS),
});

export type BatchItem =
  | { ok: true; request: NotificationRequest; idempotencyKey: string | null }
  /** The item's own error, as POST /v1/notifications would answer that body (fields named within the item). */
  | { ok: false; error: HeraldError };

/**
 * Parses a batch: throws HERALD_ERR_VALIDATION (the whole request refused) when the body is not
 * `{"notifications": [1 to 1,000 items]}`; otherwise one BatchItem per item, in order.
 */
export function parseBatchRequest(input: unknown): BatchItem[] {
  const envelope = batchEnvelopeSchema.safeParse(input);
  if (!envelope.success) throw validationError(issuesOf(envelope.error));
  return envelope.data.notifications.map(parseItem);
}

function parseItem(item: unknown): BatchItem {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return { ok: false, error: validationError([{ field: '(body)', message: 'must be a notification object' }]) };
  }
  const { idempotencyKey: rawKey, ...body } = item as Record<string, unknown>;
  // null is no key, as an absent one.
  const key = rawKey === undefined || rawKey === null ? null : idempotencyKeySchema.safeParse(rawKey);
  const keyIssues = key && !key.success ? issuesOf(key.error).map((i) => ({ ...i, field: 'idempotencyKey' })) : [];
  try {
    const request = parseNotificationRequest(body);
    if (keyIssues.length) return { ok: false, error: validationError(keyIssues) };
    return { ok: true, request, idempotencyKey: key?.success ? key.data : null };
  } catch (e) {
    if (!(e instanceof HeraldError) || e.code !== 'HERALD_ERR_VALIDATION') throw e;
    const issues = [...keyIssues, ...((e.details as { field: string; message: string }[] | null) ?? [])];
    return { ok: false, error: validationError(issues) };
  }
}
