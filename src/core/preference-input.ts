/**
 * Validation of `PUT /v1/users/{userId}/preferences`, done once at the edge. The body is the whole
 * of the user's preferences (a PUT replaces them); every field may be left out (empty).
 *
 * - `channels`: `{"<channel>": true | false}`, channels of API.md only (`in_app`, `email`, …).
 * - `categories`: keys are category names (the rules of `category` in a notification: a dotted name
 *   like `comment.reply`) or such a name followed by `.*` (a prefix: `marketing.*`); values are
 *   `true`, `false`, or a non-empty `{"<channel>": true | false}`. At most 500 keys.
 * - `quietHours`: `{"start": "HH:MM", "end": "HH:MM"}` (24-hour, 00:00–23:59, start ≠ end; the end
 *   may be earlier than the start: over midnight), or null.
 *
 * Every refusal is HERALD_ERR_VALIDATION naming the field: `channels.fax`, `categories.a..b`,
 * `categories.comment.reply.email`, `quietHours.start`.
 */
import { z } from 'zod';
import { type FieldIssue, validationError } from './errors.ts';
import { categorySchema, LIMITS } from './input.ts';
import type { ChannelSwitches, Preferences } from './preferences.ts';
import { CHANNELS, type Channel } from './types.ts';

export const PREFERENCE_LIMITS = { categories: 500 } as const;

const SWITCH = 'must be true or false';
const channelSwitches = z.partialRecord(z.enum(CHANNELS), z.boolean({ error: SWITCH }));

/** `comment.reply` or `marketing.*`. */
export const categoryKeySchema = z
  .string()
  .max(LIMITS.categoryLength + 2, `at most ${LIMITS.categoryLength + 2} characters`)
  .refine(
    (k) => categorySchema.safeParse(k.endsWith('.*') ? k.slice(0, -2) : k).success,
    'must be a category name like "comment.reply", or a prefix like "marketing.*"',
  );

const hhmm = z
  .string({ error: 'must be a time "HH:MM"' })
  .regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, 'must be a time "HH:MM" from 00:00 to 23:59');

export const preferencesSchema = z.strictObject({
  channels: channelSwitches.default({}),
  categories: z
    .record(
      categoryKeySchema,
      z.union(
        [
          z.boolean(),
          channelSwitches.refine((o) => Object.keys(o).length > 0, {
            message: 'must name a channel',
            // Only when it is otherwise valid: an unknown channel is reported as that alone.
            when: (payload) => payload.issues.length === 0,
          }),
        ],
        {
          error: 'must be true, false, or {"<channel>": true | false}',
        },
      ),
    )
    .refine(
      (c) => Object.keys(c).length <= PREFERENCE_LIMITS.categories,
      `at most ${PREFERENCE_LIMITS.categories} keys`,
    )
    .default({}),
  quietHours: z
    .strictObject({ start: hhmm, end: hhmm })
    .refine((q) => q.start !== q.end, { message: 'must differ from start', path: ['end'] })
    .nullable()
    .default(null),
});

const CHANNEL_LIST = CHANNELS.join(', ');

/** Issues as fields a person can find: `channels.fax` rather than `channels` + "unrecognized key". */
function issuesOf(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []): FieldIssue[] {
  return issues.flatMap((i): FieldIssue[] => {
    const at = [...prefix, ...i.path].map(String);
    const field = (...more: string[]) => [...at, ...more].join('.') || '(body)';
    if (i.code === 'unrecognized_keys') {
      const unknownChannel = at[0] === 'channels' || at[0] === 'categories';
      return i.keys.map((k) => ({
        field: field(k),
        message: unknownChannel ? `unknown channel: must be one of ${CHANNEL_LIST}` : 'unknown field',
      }));
    }
    if (i.code === 'invalid_key') {
      const inner = i.issues[0]?.message;
      const message = at[0] === 'channels' ? `unknown channel: must be one of ${CHANNEL_LIST}` : (inner ?? i.message);
      return [{ field: field(), message }];
    }
    if (i.code === 'invalid_union') {
      // The branch of the value's own type (an object of channels), when there is one, says what is wrong.
      const own = i.errors.find((branch) => !branch.some((b) => b.code === 'invalid_type' && b.path.length === 0));
      if (own) return issuesOf(own, at);
    }
    if (i.code === 'invalid_type' && at.length === 0) return [{ field: '(body)', message: 'must be a JSON object' }];
    return [{ field: field(), message: i.message }];
  });
}

export function parsePreferences(input: unknown): Preferences {
  const r = preferencesSchema.safeParse(input);
  if (!r.success) throw validationError(issuesOf(r.error.issues));
  // Rebuilt with plain objects (no prototype surprises), keys in the order given.
  const switches = (o: Partial<Record<Channel, boolean>>): ChannelSwitches => Object.fromEntries(Object.entries(o));
  return {
    channels: switches(r.data.channels),
    categories: Object.fromEntries(
      Object.entries(r.data.categories).map(([k, v]) => [k, typeof v === 'boolean' ? v : switches(v)]),
    ),
    quietHours: r.data.quietHours ? { start: r.data.quietHours.start, end: r.data.quietHours.end } : null,
  };
}
