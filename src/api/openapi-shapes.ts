/**
 * What Herald answers, as zod schemas with a real example each: the success bodies of the HTTP
 * routes and the body of the webhook Herald POSTs. They exist for the OpenAPI document (the answers
 * themselves are plain JSON.stringify), so test/openapi.integration.test.ts parses real answers
 * with them (strictly: an undocumented field fails) and parses each example too: the document can
 * neither drift from the server nor show an example the server would never send.
 */
import { z } from 'zod';
import { CHANNELS, LANES } from '../core/types.ts';
import { AGGREGATION_FIELDS } from './openapi-shapes-aggregation.ts';

export const isoDate = z.string().meta({ format: 'date-time' });
const channel = z.enum(CHANNELS);
const priority = z.enum(LANES);
const json = z.json();

// One story told by every example: Bob replied to Alice's comment.
const NOTIFICATION_ID = '01a24ce0-002a-7000-8dde-a9b942d4282b';
const IN_APP_DELIVERY = '01a24ce0-002f-7000-b7b4-8bcd60890aca';
const WEBHOOK_DELIVERY = '01a24ce0-002f-7001-89c8-72d0328424ae';
const CREATED = '2026-12-06T19:41:18.250Z';

export const EXAMPLES = {
  notificationRequest: {
    to: ['alice'],
    category: 'comment.reply',
    priority: 'normal',
    channels: ['in_app', 'webhook'],
    title: 'New reply',
    body: 'Bob replied to your comment',
    data: { postId: 42, commentId: 7 },
    groupKey: 'post:42:replies',
  },
  userProfileRequest: {
    email: 'alice@example.com',
    phone: '+14155550123',
    timezone: 'Europe/Paris',
    locale: 'en-GB',
    webhookUrl: 'https://alice.example.com/herald-hook',
    chatWebhookUrl: 'https://chat.example.com/hooks/alice',
  },
  templateRequest: {
    defaultLocale: 'en',
    locales: {
      en: {
        title: '{{ data.actor }} replied',
        body: '{{ data.excerpt }}',
        email: {
          subject: 'New reply from {{ data.actor }}',
          html: '<p>{{ data.excerpt }}</p>',
          text: '{{ data.excerpt }}',
        },
        sms: { text: '{{ data.actor }}: {{ data.excerpt | truncate: 100 }}' },
      },
      de: { title: '{{ data.actor }} hat geantwortet', body: '{{ data.excerpt }}' },
    },
  },
  previewRequest: {
    locale: 'de',
    channel: 'email',
    data: { actor: 'Bob', excerpt: 'Looks <good> to me' },
    user: { id: 'alice', locale: 'de', timezone: 'Europe/Berlin' },
  },
  idempotencyKey: 'order-7-shipped',
  userId: 'alice',
  notificationId: NOTIFICATION_ID,
  deliveryId: WEBHOOK_DELIVERY,
} as const;

const accepted = z.strictObject({
  id: z.string().describe('The notification id (UUIDv7)'),
  status: z.enum(['accepted', 'scheduled']).describe('`scheduled` when `sendAt` is in the future'),
  recipients: z.number().int().nullable().describe('How many users; null for a topic until fanned out'),
});

const delivery = z.strictObject({
  id: z.string().describe('The delivery id; the `webhook-id` of a webhook delivery'),
  userId: z.string(),
  channel,
  status: z.enum(['pending', 'sent', 'delivered', 'read', 'failed', 'dead', 'skipped']),
  state: z
    .enum(['pending', 'processing', 'sent', 'delivered', 'read', 'failed', 'dead', 'cancelled', 'skipped'])
    .describe('The stored state (`processing` while a worker holds it, `cancelled`)'),
  attempts: z.number().int(),
  lastError: z.string().nullable(),
  reason: z
    .string()
    .nullable()
    .describe(
      'Why a `skipped` delivery was not sent, as a stable code: `no_provider`, `no_address`, `opted_out`, `read`, `delivered`, …; null otherwise',
    ),
  nextAttemptAt: isoDate.nullable().describe('When the next attempt is due'),
  updatedAt: isoDate,
});

const notificationView = z.strictObject({
  id: z.string(),
  category: z.string(),
  priority,
  createdAt: isoDate,
  status: z.enum(['accepted', 'scheduled', 'processing', 'done', 'partially_failed', 'failed', 'cancelled']),
  channels: z.array(channel).describe('Every channel asked for, in order, whether named or given as a step'),
  steps: z
    .array(
      z.strictObject({
        channel,
        after: z.string().nullable().describe('The delay as given (ISO 8601 duration); null: none'),
        unless: z.enum(['read', 'delivered']).nullable(),
      }),
    )
    .nullable()
    .describe('The `channels` entries given as steps, in order; null when every entry was a name'),
  title: z.string().nullable(),
  body: z.string().nullable(),
  data: json.nullable(),
  sendAt: isoDate.nullable(),
  groupKey: z.string().nullable(),
  recipients: z.number().int().nullable(),
  counts: z.record(z.string(), z.number().int()).describe('Deliveries per stored state, over all pages'),
  deliveries: z.array(delivery).describe('One per recipient × channel; paged by `cursor` and `limit`'),
  nextCursor: z.string().nullable().describe('Pass as `?cursor=` for the next page of deliveries'),
  timeline: z
    .array(z.strictObject({ at: isoDate, event: z.string(), detail: json }))
    .describe('Up to 1,000 events, oldest first'),
  nextTimelineCursor: z
    .string()
    .nullable()
    .describe('Pass as `?timelineCursor=` for the next 1,000 timeline events; null: none'),
});

const profile = z.strictObject({
  id: z.string(),
  email: z.string().nullable(),
  phone: z.string().nullable(),
  timezone: z.string().nullable(),
  locale: z.string().nullable(),
  webhookUrl: z.string().nullable(),
  chatWebhookUrl: z.string().nullable().describe('Slack-compatible incoming webhook: where `chat` deliveries go'),
});

const inboxItem = z.strictObject({
  id: z.string().describe('The notification id'),
  seq: z.number().int().describe("Per-user, only grows; the real-time stream's resume point"),
  category: z.string(),
  priority,
  title: z
    .string()
    .nullable()
    .describe("Rendered for this user from the category's template when it has one; else the notification's"),
  body: z
    .string()
    .nullable()
    .describe("Rendered for this user from the category's template when it has one; else the notification's"),
  data: json,
  createdAt: isoDate,
  readAt: isoDate.nullable(),
  ...AGGREGATION_FIELDS,
});

const deadLetter = z.strictObject({
  id: z.string().describe('The delivery id'),
  notificationId: z.string(),
  userId: z.string(),
  channel,
  status: z.enum(['failed', 'dead']),
  attempts: z.number().int(),
  lastError: z.string().nullable(),
  updatedAt: isoDate,
});

const webhookBody = z.strictObject({
  type: z.literal('notification'),
  id: z.string().describe('The notification id'),
  deliveryId: z.string().describe('The delivery id, also sent as `webhook-id`'),
  userId: z.string(),
  category: z.string(),
  priority,
  title: z.string().nullable(),
  body: z.string().nullable(),
  data: json.nullable(),
  groupKey: z.string().nullable(),
  createdAt: isoDate,
});

const chatText = (type: 'plain_text' | 'mrkdwn') => z.strictObject({ type: z.literal(type), text: z.string() });
const chatMessage = z.strictObject({
  text: z.string().describe('Title and body, one per line, mrkdwn-escaped (`&amp;`, `&lt;`, `&gt;`)'),
  blocks: z
    .array(
      z.union([
        z.strictObject({ type: z.literal('header'), text: chatText('plain_text') }),
        z.strictObject({ type: z.literal('section'), text: chatText('mrkdwn') }),
      ]),
    )
    .describe('A header with the title (≤ 150 characters), a section with the body (≤ 3,000, mrkdwn-escaped)'),
});

const localeTemplate = z.strictObject({
  title: z.string().optional(),
  body: z.string().optional(),
  email: z
    .strictObject({ subject: z.string().optional(), html: z.string().optional(), text: z.string().optional() })
    .optional(),
  sms: z.strictObject({ text: z.string().optional() }).optional(),
  push: z.strictObject({ title: z.string().optional(), body: z.string().optional() }).optional(),
  chat: z.strictObject({ text: z.string().optional() }).optional(),
});

const storedTemplate = z.strictObject({
  category: z.string(),
  defaultLocale: z.string(),
  locales: z.record(z.string(), localeTemplate).describe('Liquid source per locale: title, body and channel sections'),
  updatedAt: isoDate,
});

const text = z.string().nullable();
const preview = z.strictObject({
  title: text,
  body: text,
  email: z.strictObject({ subject: text, html: text, text }).optional().describe('When `channel` is email'),
  sms: z.strictObject({ text }).optional().describe('When `channel` is sms'),
  push: z.strictObject({ title: text, body: text }).optional().describe('When `channel` is push'),
  chat: z.strictObject({ text }).optional().describe('When `channel` is chat'),
});

const providerView = z.strictObject({
  name: z.string().describe('`smtp`, `twilio`, `push`, `webhook`, `chat`, or a name HERALD_CONFIG gives'),
  channel,
  order: z.number().int().describe("Place in the channel's fallback order, from 0"),
  circuit: z
    .strictObject({
      state: z.enum(['closed', 'open', 'half_open']).describe('half_open: the next send is a probe'),
      consecutiveFailures: z.number().int(),
      openedAt: isoDate.nullable().describe('When it last opened'),
      probeAt: isoDate.nullable().describe('While open: when the next probe may go'),
      opened: z.number().int().describe('Times it opened since this process started'),
    })
    .nullable()
    .describe("Null: no breaker (webhook and chat: one receiver's failures are not the provider's)"),
  rateLimit: z
    .strictObject({ perSecond: z.number(), burst: z.number().int() })
    .nullable()
    .describe('Sends paced to at most perSecond × t + burst in any t seconds; null: none'),
  sent: z.number().int().describe('Sends it accepted since this process started'),
  failed: z.number().int().describe('Sends it refused or failed'),
  lastError: z.string().nullable(),
  lastErrorAt: isoDate.nullable(),
});

/** A documented answer: its schema, what the status means, and one real example. */
export interface Shape {
  schema: z.ZodType;
  description: string;
  example: unknown;
}

export const shape = <E>(schema: z.ZodType, description: string, example: E) => ({ schema, description, example });

export const SHAPES = {
  providers: shape(
    z.strictObject({ items: z.array(providerView) }),
    "Each channel's providers in fallback order, as this process sees them (breakers are per process)",
    {
      items: [
        {
          name: 'smtp',
          channel: 'email',
          order: 0,
          circuit: {
            state: 'open',
            consecutiveFailures: 5,
            openedAt: '2026-12-06T19:41:20.004Z',
            probeAt: '2026-12-06T19:41:50.004Z',
            opened: 1,
          },
          rateLimit: { perSecond: 200, burst: 20 },
          sent: 1830,
          failed: 5,
          lastError: 'SMTP connect ECONNREFUSED 10.0.0.5:587',
          lastErrorAt: '2026-12-06T19:41:20.004Z',
        },
        {
          name: 'smtp-backup',
          channel: 'email',
          order: 1,
          circuit: { state: 'closed', consecutiveFailures: 0, openedAt: null, probeAt: null, opened: 0 },
          rateLimit: null,
          sent: 12,
          failed: 0,
          lastError: null,
          lastErrorAt: null,
        },
      ],
    },
  ),
  accepted: shape(accepted, 'Accepted: the notification and its deliveries are durably stored', {
    id: NOTIFICATION_ID,
    status: 'accepted',
    recipients: 1,
  }),
  notification: shape(notificationView, 'The notification, a page of its deliveries, and its timeline', {
    id: NOTIFICATION_ID,
    category: 'comment.reply',
    priority: 'normal',
    createdAt: CREATED,
    status: 'processing',
    channels: ['in_app', 'webhook'],
    steps: null,
    title: 'New reply',
    body: 'Bob replied to your comment',
    data: { postId: 42, commentId: 7 },
    sendAt: null,
    groupKey: 'post:42:replies',
    recipients: 1,
    counts: { sent: 1, pending: 1 },
    deliveries: [
      {
        id: IN_APP_DELIVERY,
        userId: 'alice',
        channel: 'in_app',
        status: 'sent',
        state: 'sent',
        attempts: 1,
        lastError: null,
        reason: null,
        nextAttemptAt: null,
        updatedAt: '2026-12-06T19:41:18.255Z',
      },
      {
        id: WEBHOOK_DELIVERY,
        userId: 'alice',
        channel: 'webhook',
        status: 'pending',
        state: 'pending',
        attempts: 1,
        lastError: 'receiver answered HTTP 503',
        reason: null,
        nextAttemptAt: '2026-12-06T19:41:23.610Z',
        updatedAt: '2026-12-06T19:41:18.367Z',
      },
    ],
    nextCursor: null,
    timeline: [
      { at: CREATED, event: 'accepted', detail: { recipients: 1, channels: ['in_app', 'webhook'] } },
      {
        at: '2026-12-06T19:41:18.255Z',
        event: 'sent',
        detail: { seq: 1, userId: 'alice', attempt: 1, channel: 'in_app' },
      },
      {
        at: '2026-12-06T19:41:18.367Z',
        event: 'attempt_failed',
        detail: {
          error: 'receiver answered HTTP 503',
          nextAttemptAt: '2026-12-06T19:41:23.610Z',
          userId: 'alice',
          attempt: 1,
          channel: 'webhook',
        },
      },
    ],
    nextTimelineCursor: null,
  }),
  cancelled: shape(
    z.strictObject({ id: z.string(), status: z.literal('cancelled') }),
    'Cancelled (again, if it already was): none of its deliveries will be sent',
    { id: NOTIFICATION_ID, status: 'cancelled' },
  ),
  profile: shape(profile, 'The stored profile', { id: 'alice', ...EXAMPLES.userProfileRequest }),
  userToken: shape(
    z.strictObject({ token: z.string().describe('HS256 JWT, `sub` = the user id'), expiresAt: isoDate }),
    'A user token: it may read and act on this user only',
    {
      token:
        'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTc5NjU4NjA3OSwiZXhwIjoxNzk2NTg5Njc5fQ.g_wfa7wZ8E7f_Z7U70lHx7hnaocKH25VZy0_A1wP2Js',
      expiresAt: '2026-12-06T20:41:19.000Z',
    },
  ),
  inboxPage: shape(
    z.strictObject({
      items: z.array(inboxItem),
      unreadCount: z.number().int(),
      nextBefore: z.number().int().nullable().describe('Pass as `?before=` for the next (older) page'),
    }),
    'A page of the inbox, newest first',
    {
      items: [
        {
          id: NOTIFICATION_ID,
          seq: 2,
          category: 'comment.reply',
          priority: 'normal',
          title: 'New reply',
          body: 'Bob replied to your comment',
          data: { postId: 42, commentId: 7 },
          createdAt: CREATED,
          readAt: null,
        },
        {
          id: '01a24cd9-5e10-7000-9a4b-1f0c3d2e5a6b',
          seq: 1,
          category: 'order.shipped',
          priority: 'high',
          title: 'Your order has shipped',
          body: 'Order #7 is on its way',
          data: { orderId: 7 },
          createdAt: '2026-12-06T19:33:52.016Z',
          readAt: '2026-12-06T19:35:10.442Z',
        },
      ],
      unreadCount: 1,
      nextBefore: null,
    },
  ),
  unreadCount: shape(z.strictObject({ unreadCount: z.number().int() }), 'The unread count after marking', {
    unreadCount: 0,
  }),
  deadLetters: shape(
    z.strictObject({ items: z.array(deadLetter), nextCursor: z.string().nullable() }),
    'Deliveries that failed for good, oldest first',
    {
      items: [
        {
          id: WEBHOOK_DELIVERY,
          notificationId: NOTIFICATION_ID,
          userId: 'alice',
          channel: 'webhook',
          status: 'dead',
          attempts: 5,
          lastError: 'receiver answered HTTP 503',
          updatedAt: '2026-12-06T19:43:52.118Z',
        },
      ],
      nextCursor: null,
    },
  ),
  replayed: shape(
    z.strictObject({ id: z.string(), status: z.literal('pending') }),
    'Queued again, with attempts starting over',
    { id: WEBHOOK_DELIVERY, status: 'pending' },
  ),
  presence: shape(
    z.strictObject({
      userId: z.string(),
      online: z.boolean(),
      sockets: z.number().int(),
      lastSeen: isoDate.nullable(),
    }),
    'Presence across every gateway process',
    { userId: 'alice', online: true, sockets: 2, lastSeen: '2026-12-06T19:41:20.004Z' },
  ),
  template: shape(storedTemplate, "The category's stored templates", {
    category: 'comment.reply',
    ...EXAMPLES.templateRequest,
    updatedAt: '2026-12-06T19:30:02.118Z',
  }),
  preview: shape(preview, 'The rendered fields: title and body, and the channel section', {
    title: 'Bob hat geantwortet',
    body: 'Looks <good> to me',
    email: { subject: 'Bob hat geantwortet', html: 'Looks &lt;good&gt; to me', text: 'Looks <good> to me' },
  }),
  health: shape(z.strictObject({ status: z.literal('ok') }), 'The process is alive', { status: 'ok' }),
  ready: shape(
    z.strictObject({ status: z.literal('ok'), store: z.string(), bus: z.string() }),
    'The store and the bus answered',
    { status: 'ok', store: 'pglite', bus: 'queue-table' },
  ),
  webhook: shape(webhookBody, 'The notification, as the webhook channel POSTs it', {
    type: 'notification',
    id: NOTIFICATION_ID,
    deliveryId: WEBHOOK_DELIVERY,
    userId: 'alice',
    category: 'comment.reply',
    priority: 'normal',
    title: 'New reply',
    body: 'Bob replied to your comment',
    data: { postId: 42, commentId: 7 },
    groupKey: 'post:42:replies',
    createdAt: CREATED,
  }),
  chatMessage: shape(chatMessage, 'The notification, as the chat channel POSTs it (Slack incoming-webhook format)', {
    text: 'New reply\nBob replied to your comment',
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: 'New reply' } },
      { type: 'section', text: { type: 'mrkdwn', text: 'Bob replied to your comment' } },
    ],
  }),
} satisfies Record<string, Shape>;

/** Path parameters, documented with an example each. */
export const PARAMS = {
  notificationId: z.object({
    id: z.string().meta({ description: 'The notification id', examples: [NOTIFICATION_ID] }),
  }),
  deliveryId: z.object({
    id: z.string().meta({ description: 'The delivery id (a dead letter)', examples: [WEBHOOK_DELIVERY] }),
  }),
  category: z.object({
    category: z.string().meta({ description: 'The category, a dotted name', examples: ['comment.reply'] }),
  }),
  userId: z.object({
    userId: z.string().meta({
      description: 'The user id: 1–200 characters, no whitespace, control characters or / ? # % \\',
      examples: ['alice'],
    }),
  }),
};
