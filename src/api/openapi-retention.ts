/** The answer of POST /v1/maintenance/retention (openapi-shapes.ts is full; same conventions). */
import { z } from 'zod';

export const RETENTION_SHAPE = {
  schema: z.strictObject({
    partitions: z.strictObject({ created: z.array(z.string()), dropped: z.array(z.string()) }),
    removed: z.strictObject({
      notifications: z.number().int(),
      deliveries: z.number().int(),
      inboxItems: z.number().int(),
      timelineEvents: z.number().int(),
      digests: z.number().int(),
      capWindows: z.number().int(),
    }),
  }),
  description:
    'What the run removed: whole days (partitions `pYYYYMMDD` dropped) and expired notifications of the days kept, ' +
    'with their deliveries, inbox items and timeline events, and finished digests older than the ' +
    'default retention, and the cap counters of windows that ended over an hour ago; and the day partitions it made ahead',
  example: {
    partitions: { created: ['p20261214'], dropped: ['p20261106'] },
    removed: {
      notifications: 1204,
      deliveries: 3610,
      inboxItems: 1187,
      timelineEvents: 7233,
      digests: 40,
      capWindows: 310,
    },
  },
};
