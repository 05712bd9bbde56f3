/**
 * Validation of what producers send, done once at the edge. Inside Herald values are valid.
 * Every rule here exists because the store or a channel would otherwise fail later, half-way.
 */
import { z } from 'zod';
import { type FieldIssue, validationError } from './errors.ts';
import { parseIsoDuration } from './iso-duration.ts';
import {
  CHANNELS,
  type Channel,
  type ChannelStep,
  LANES,
  type NotificationRequest,
  type ReadSelection,
  type UserProfile,
} from './types.ts';

export const LIMITS = {
  recipients: 10_000,
  idLength: 200,
  categoryLength: 120,
  titleLength: 1_000,
  bodyLength: 20_000,
  dataBytes: 32_768,
  groupKeyLength: 300,
  idempotencyKeyLength: 255,
  /** How far ahead sendAt may be. */
  sendAtHorizonDays: 366,
  /** The longest delay of a channel step (`after`): 30 days. */
  stepAfterMs: 30 * 86_400_000,
  /** The longest `ttl` of a notification or a category: 366 days. */
  ttlMs: 366 * 86_400_000,
} as const;

// A NUL cannot be stored in PostgreSQL text/jsonb; an unpaired surrogate cannot be encoded as UTF-8.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isStorableString(s: string): boolean {
  return !UNSTORABLE.test(s);
}

/** An invisible format character (Unicode general category Cf). */
const FORMAT_CHARACTER = /\p{Cf}/u;

export const storable = (max: number) =>
  z.string().max(max, `at most ${max} characters`).refine(isStorableString, 'contains a NUL or an unpaired surrogate');

/**
 * User ids, topic names: printable, no slashes (they travel in URLs), no surrounding blanks; not
 * `.` or `..` (URL normalisation collapses those path segments, so `/v1/users/..` would name
 * another resource); no invisible format characters (Unicode category Cf: zero-width space and
 * joiners, the BOM, bidirectional overrides, soft hyphen…), which would make two ids look the same.
 */
export const idSchema = storable(LIMITS.idLength)
  .min(1, 'must not be empty')
  .regex(/^[^\s/?#%\\\u0000-\u001f\u007f]+$/, 'must not contain whitespace, control characters, / ? # % or \\')
  .refine((s) => s !== '.' && s !== '..', 'must not be "." or ".." (URL path segments that collapse)')
  .refine((s) => !FORMAT_CHARACTER.test(s), {
    error: (issue) => {
      const c = FORMAT_CHARACTER.exec(String(issue.input))?.[0] ?? '';
      const code = `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
      return `must not contain invisible format characters (found ${code})`;
    },
  });

export const categorySchema = z
  .string()
  .min(1, 'must not be empty')
  .max(LIMITS.categoryLength, `at most ${LIMITS.categoryLength} characters`)
  .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be a dotted name like "comment.reply"');

function storableJson(value: unknown, depth = 0): boolean {
  if (depth > 32) return false;
  if (typeof value === 'string') return isStorableString(value);
  if (Array.isArray(value)) return value.every((v) => storableJson(v, depth + 1));
  if (value && typeof value === 'object') {
    return Object.entries(value).every(([k, v]) => isStorableString(k) && storableJson(v, depth + 1));
  }
  return true;
}

export const dataSchema = z
  .record(z.string(), z.json())
  .refine((d) => storableJson(d), 'holds a NUL, an unpaired surrogate, or nests deeper than 32 levels')
  .refine((d) => Buffer.byteLength(JSON.stringify(d)) <= LIMITS.dataBytes, `at most ${LIMITS.dataBytes} bytes as JSON`);

const sendAtSchema = z.iso
  .datetime({ offset: true, message: 'must be an ISO 8601 date-time with a time zone, e.g. 2026-12-01T09:00:00Z' })
  .transform((s) => new Date(s))
  .refine((d) => !Number.isNaN(d.getTime()), 'is not a real date')
  .refine(
    (d) => d.getTime() <= Date.now() + LIMITS.sendAtHorizonDays * 86_400_000,
    `must be within ${LIMITS.sendAtHorizonDays} days`,
  );

const channelSchema = z.enum(CHANNELS);

/** A `channels` entry given as an object (API.md Part 2: a step). */
const stepSchema = z
  .strictObject({
    channel: channelSchema,
    after: z
      .string()
      .max(40, 'at most 40 characters')
      .transform((text, ctx) => {
        const d = parseIsoDuration(text, LIMITS.stepAfterMs);
        if (!d.ok) {
          ctx.addIssue({ code: 'custom', message: d.message });
          return z.NEVER;
        }
        return { text, ms: d.ms };
      })
      .optional(),
    unless: z.enum(['read', 'delivered'], 'must be "read" or "delivered"').optional(),
  })
  .superRefine((step, ctx) => {
    if (step.unless && step.channel === 'in_app') {
      ctx.addIssue({
        code: 'custom',
        path: ['unless'],
        message: 'is a condition on the in-app delivery itself; put it on another channel',
      });
    }
  })
  .transform(
    (step): ChannelStep => ({
      channel: step.channel,
      after: step.after?.text ?? null,
      afterMs: step.after?.ms ?? 0,
      unless: step.unless ?? null,
    }),
  );

/**
 * One `channels` entry: a channel's name, or a step. Dispatched on the entry's type by hand, so that
 * a bad step names its own field (`channels.1.after`) instead of "matches neither form".
 */
const channelEntrySchema = z
  .unknown()
  .transform((entry, ctx): Channel | ChannelStep => {
    const isObject = typeof entry === 'object' && entry !== null && !Array.isArray(entry);
    const r = isObject ? stepSchema.safeParse(entry) : channelSchema.safeParse(entry);
    if (r.success) return r.data;
    for (const issue of r.error.issues) {
      ctx.addIssue({
        code: 'custom',
        path: issue.path,
        message:
          issue.code === 'unrecognized_keys'
            ? `unknown field(s): ${issue.keys.join(', ')}`
            : isObject
              ? issue.message
              : `must be one of ${CHANNELS.join(', ')}, or a step {"channel", "after", "unless"}`,
      });
    }
    return z.NEVER;
  })
  .meta({
    // What the OpenAPI document shows for an entry (the transform above has no JSON Schema of its own).
    anyOf: [z.toJSONSchema(channelSchema, { io: 'input' }), z.toJSONSchema(stepSchema, { io: 'input' })].map(
      ({ $schema: _, ...rest }) => rest,
    ),
    description:
      'A channel, or a step: `{"channel": "email", "after": "PT10M", "unless": "read"}` — sent `after` the notification is due (ISO 8601 duration, days to whole seconds, at most P30D), skipped if the same notification\'s in-app delivery to that user is by then `read` (or `delivered`)',
  });

const channelsSchema = z
  .array(channelEntrySchema)
  .min(1, 'must name at least one channel')
  .max(CHANNELS.length)
  .superRefine((entries, ctx) => {
    const seen = new Set<Channel>();
    for (const e of entries) {
      const channel = typeof e === 'string' ? e : e.channel;
      if (seen.has(channel)) ctx.addIssue({ code: 'custom', message: `must not repeat a channel (${channel})` });
      seen.add(channel);
    }
  });

/** A lifetime (`ttl` of a notification or a category): an ISO 8601 duration of at most a year. */
export const ttlSchema = z
  .string()
  .max(40, 'at most 40 characters')
  .transform((text, ctx) => {
    const d = parseIsoDuration(text, LIMITS.ttlMs);
    if (!d.ok || d.ms < 1000) {
      ctx.addIssue({ code: 'custom', message: d.ok ? 'must be at least PT1S' : d.message });
      return z.NEVER;
    }
    return { text, ms: d.ms };
  });

export const notificationRequestSchema = z.strictObject({
  to: z.union([
    z
      .array(idSchema)
      .min(1, 'must name at least one user')
      .max(LIMITS.recipients, `at most ${LIMITS.recipients} users; use a topic for more`),
    z.strictObject({ topic: idSchema }),
  ]),
  category: categorySchema,
  priority: z.enum(LANES).optional(),
  channels: channelsSchema.optional(),
  title: storable(LIMITS.titleLength).nullable().default(null),
  body: storable(LIMITS.bodyLength).nullable().default(null),
  data: dataSchema.nullable().default(null),
  sendAt: sendAtSchema.nullable().default(null),
  groupKey: storable(LIMITS.groupKeyLength).nullable().default(null),
  ttl: ttlSchema.nullable().default(null),
});

export function issuesOf(error: z.ZodError): FieldIssue[] {
  return error.issues.map((i) => ({
    field: i.path.length ? i.path.map(String).join('.') : '(body)',
    message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
  }));
}

/** Parses with `schema` or throws HERALD_ERR_VALIDATION naming every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw validationError(issuesOf(r.error));
  return r.data;
}

export function parseNotificationRequest(input: unknown): NotificationRequest {
  const r = parseOrThrow(notificationRequestSchema, input);
  const topic = Array.isArray(r.to) ? null : r.to.topic;
  const to = Array.isArray(r.to) ? r.to : [];
  const entries = r.channels ?? DEFAULT_CHANNELS;
  const steps = entries.filter((e): e is ChannelStep => typeof e !== 'string');
  // Written out rather than spread: see Ingest.submit.
  const out: NotificationRequest = {
    to: to.length > 1 ? [...new Set(to)] : to,
    category: r.category,
    priority: r.priority ?? 'normal',
    channels: steps.length ? entries.map((e) => (typeof e === 'string' ? e : e.channel)) : (entries as Channel[]),
    steps: steps.length ? steps : null,
    title: r.title,
    body: r.body,
    data: r.data as NotificationRequest['data'],
    sendAt: r.sendAt,
    groupKey: r.groupKey,
  };
  // Only present when given, so that the request's hash (idempotency) is what it was before them.
  if (topic !== null) out.topic = topic;
  if (r.ttl) {
    out.ttl = r.ttl.text;
    out.ttlMs = r.ttl.ms;
  }
  if (r.priority === undefined || r.channels === undefined) {
    out.defaulted = [
      ...(r.priority === undefined ? (['priority'] as const) : []),
      ...(r.channels === undefined ? (['channels'] as const) : []),
    ];
  }
  return out;
}

const DEFAULT_CHANNELS: readonly Channel[] = ['in_app'];

export const idempotencyKeySchema = z
  .string()
  .min(1, 'must not be empty')
  .max(LIMITS.idempotencyKeyLength, `at most ${LIMITS.idempotencyKeyLength} characters`)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

/** A URL Herald will send to: http(s), no credentials (they would be stored and shown with the profile). */
const httpsOrHttpUrl = z
  .url({ protocol: /^https?$/, message: 'must be an http(s) URL' })
  .max(2_000, 'at most 2000 characters')
  .refine((u) => {
    const parsed = URL.parse(u); // null when not a URL: that is z.url's to say
    return !parsed || (!parsed.username && !parsed.password);
  }, 'must not hold credentials (user:password@); authenticate the request by its webhook-signature');

/**
 * Says why Herald will not send to a URL (its host is a non-public address, or `localhost`, outside
 * the egress allowance), or null. The adapter that sends supplies it; the core knows no addresses.
 */
export type DestinationCheck = (url: string) => string | null;

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const userProfileSchema = z.strictObject({
  email: z.email('must be an email address').max(320).nullable().default(null),
  phone: z
    .string()
    .regex(/^\+[1-9][0-9]{6,14}$/, 'must be E.164, e.g. +14155550100')
    .nullable()
    .default(null),
  timezone: z
    .string()
    .max(64)
    .refine(isTimeZone, 'must be an IANA time zone, e.g. Europe/Paris')
    .nullable()
    .default(null),
  locale: z
    .string()
    .regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, 'must be a BCP 47 tag, e.g. en-US')
    .nullable()
    .default(null),
  webhookUrl: httpsOrHttpUrl.nullable().default(null),
  chatWebhookUrl: httpsOrHttpUrl.nullable().default(null),
});

/** `checkDestination`: refuses (400 naming the field) a URL Herald would never connect to. */
export function parseUserProfile(id: string, input: unknown, checkDestination?: DestinationCheck): UserProfile {
  const profile = parseOrThrow(userProfileSchema, input);
  const refusals = (['webhookUrl', 'chatWebhookUrl'] as const).flatMap((field) => {
    const url = profile[field];
    const refused = url && checkDestination?.(url);
    return refused ? [{ field, message: refused }] : [];
  });
  if (refusals.length > 0) throw validationError(refusals);
  return { id, ...profile };
}

export const readSelectionSchema = z.union([
  z.strictObject({ seqs: z.array(z.number().int().positive()).min(1).max(1_000) }),
  z.strictObject({ upToSeq: z.number().int().nonnegative() }),
  z.strictObject({ all: z.literal(true) }),
]);

export function parseReadSelection(input: unknown): ReadSelection {
  const r = readSelectionSchema.safeParse(input);
  if (!r.success) {
    throw validationError([{ field: '(body)', message: 'must be {"seqs": [n, …]}, {"upToSeq": n} or {"all": true}' }]);
  }
  return r.data;
}
