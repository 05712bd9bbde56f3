/** OpenAPI shapes of the categories API (PUT/GET/DELETE /v1/categories/{category}); see openapi-shapes.ts. */
import { z } from 'zod';
import { CHANNELS, LANES } from '../core/types.ts';
import type { Shape } from './openapi-shapes.ts';

export const CATEGORY_EXAMPLES = {
  policy: {
    priority: 'normal',
    channels: ['in_app', 'email'],
    required: false,
    quietHours: true,
    digest: { window: 'PT1H' },
    caps: { email: { max: 3, per: 'PT1H', overflow: 'drop' } },
    ttl: 'P7D',
  },
};

const cap = z.strictObject({
  max: z.number().int(),
  per: z.string().describe('ISO 8601 duration: the fixed window the cap counts in'),
  overflow: z.enum(['digest', 'drop']),
});

export const CATEGORY_SHAPES = {
  policy: {
    schema: z.strictObject({
      category: z.string(),
      priority: z.enum(LANES).nullable().describe("Used by the category's notifications that give none"),
      channels: z.array(z.enum(CHANNELS)).nullable(),
      required: z.boolean().describe('Opt-outs are ignored, and emails carry no unsubscribe link'),
      quietHours: z.boolean().describe("Users' quiet hours apply (critical notifications always pass)"),
      digest: z.union([z.strictObject({ window: z.string() }), z.strictObject({ cron: z.string() })]).nullable(),
      caps: z.partialRecord(z.enum(CHANNELS), cap).describe('Per user, per channel: at most `max` sent per `per`'),
      ttl: z.string().nullable().describe('How long a notification of the category lives, unless it gives its own'),
      updatedAt: z.iso.datetime({ offset: true }),
    }),
    description: "The category's policy, with the defaults of the fields it left out",
    example: { category: 'comment.reply', ...CATEGORY_EXAMPLES.policy, updatedAt: '2026-11-01T09:00:00.000Z' },
  },
} satisfies Record<string, Shape>;
