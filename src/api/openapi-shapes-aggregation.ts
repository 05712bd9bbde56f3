/**
 * The inbox item's aggregation fields (API.md Part 2, "Digests and aggregation";
 * src/core/aggregation.ts), for the OpenAPI document: added to the inbox item of
 * src/api/openapi-shapes.ts (the HTTP page) and carried the same way by the real-time
 * `notification` frame (docs/realtime.md).
 */
import { z } from 'zod';
import { LANES } from '../core/types.ts';

const isoDate = z.string().meta({ format: 'date-time' });

/** The newest notification of an aggregated item. */
const latest = z.strictObject({
  id: z.string().describe('The notification id'),
  category: z.string(),
  priority: z.enum(LANES),
  title: z.string().nullable(),
  body: z.string().nullable(),
  data: z.json(),
  createdAt: isoDate,
});

/** Optional fields of an inbox item: present on items of notifications with a `groupKey`. */
export const AGGREGATION_FIELDS = {
  count: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe(
      'Notifications with this groupKey the item holds (same user, within the window: 1 hour or the category’s `digest.window`); absent on items without a groupKey',
    ),
  latest: latest
    .optional()
    .describe("The newest of them (the item's own fields are its fields too); absent on items without a groupKey"),
  replaces: z
    .number()
    .int()
    .optional()
    .describe('The seq of the item this one replaces: drop that one. Absent when it replaced none'),
};
