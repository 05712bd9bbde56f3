/**
 * OpenAPI shapes of the topic endpoints (API.md Part 2, "Topics and batches"): what each answer
 * is, with one real example. test/openapi.integration.test.ts checks live answers against them.
 */
import { z } from 'zod';
import type { Shape } from './openapi-shapes.ts';

const shape = (schema: z.ZodType, description: string, example: unknown): Shape => ({ schema, description, example });

export const TOPIC_PARAMS = {
  topic: z.object({
    topic: z.string().meta({
      description: 'The topic name: 1–200 characters, no whitespace, control characters or / ? # % \\',
      examples: ['followers-of-alice'],
    }),
  }),
};

export const TOPIC_QUERY = {
  subscribers: z.strictObject({
    limit: z.coerce.number().int().min(1).max(1000).default(100).describe('Subscribers per page (1–1000)'),
    cursor: z.string().max(300).optional().describe('nextCursor of the previous page'),
  }),
};

export const TOPIC_EXAMPLES = {
  subscribers: { userIds: ['user-1', 'user-2', 'user-3'] },
};

export const TOPIC_SHAPES = {
  added: shape(
    z.strictObject({ added: z.number().int().min(0).describe('Users who were not subscribed before this call') }),
    'Subscribed; users already subscribed are not counted again',
    { added: 2 },
  ),
  removed: shape(
    z.strictObject({ removed: z.number().int().min(0).describe('Users who were subscribed before this call') }),
    'Unsubscribed; users who were not subscribed are not counted',
    { removed: 1 },
  ),
  subscribers: shape(
    z.strictObject({
      items: z.array(z.string()).describe('Subscribed user ids, in id order'),
      nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last one'),
    }),
    "The topic's subscribers, a page at a time",
    { items: ['user-1', 'user-2'], nextCursor: 'WyJ1c2VyLTIiXQ' },
  ),
  topic: shape(
    z.strictObject({
      topic: z.string(),
      subscribers: z.number().int().min(0).describe('Current subscribers (0 for a topic nobody subscribes to)'),
    }),
    'The topic and how many users subscribe to it now',
    { topic: 'followers-of-alice', subscribers: 1000000 },
  ),
} satisfies Record<string, Shape>;
