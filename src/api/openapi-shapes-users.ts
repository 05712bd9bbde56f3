/** OpenAPI shapes of a user's push devices, preferences and unsubscribe links; see openapi-shapes.ts. */
import { z } from 'zod';
import { CHANNELS } from '../core/types.ts';
import { isoDate, PARAMS, type Shape, shape } from './openapi-shapes.ts';

// Push devices (routes-devices.ts). Alice's browser subscribed to Web Push; the key is a real P-256 point.
const DEVICE_ID = '01a24cdf-f1c0-7000-9a43-5c1e2b7d9f10';
const WEB_PUSH_SUBSCRIPTION = {
  endpoint: 'https://fcm.googleapis.com/fcm/send/cXk1Zz7bQkE:APA91bG2w5sJ4qk8tH0',
  keys: {
    p256dh: 'BDzITlaooELGuA3HARHSjx0oq2VDRaJn-oQoJUE64PxsqKZHZmZzXFEoBLFTJb4i9j5SPrbUJ3f1q_hDLnqOPnw',
    auth: 'VEXI_CeQ40Bftb83sA4vyg',
  },
};

export const DEVICE_EXAMPLES = {
  deviceRequest: { provider: 'webpush', token: WEB_PUSH_SUBSCRIPTION },
  deviceId: DEVICE_ID,
} as const;

const deviceProvider = z.enum(['webpush', 'fcm', 'apns']);
const deviceView = z.strictObject({
  id: z.string().describe('The device id (UUIDv7)'),
  provider: deviceProvider,
  token: z
    .union([
      z.string().describe('fcm: the registration token; apns: the device token, lower-case hex'),
      z
        .strictObject({
          endpoint: z.string(),
          keys: z.strictObject({ p256dh: z.string(), auth: z.string() }),
        })
        .describe('webpush: the subscription (keys as unpadded base64url)'),
    ])
    .describe('What the provider needs to reach the device'),
  createdAt: isoDate,
  lastUsedAt: isoDate.nullable().describe('When a push last went to this device; null until then'),
});

export const DEVICE_SHAPES = {
  registered: shape(
    z.strictObject({ id: z.string().describe('The device id (UUIDv7)'), provider: deviceProvider, createdAt: isoDate }),
    'The device (201: registered now; 200: the user already had this token, same id)',
    { id: DEVICE_ID, provider: 'webpush', createdAt: '2026-12-06T19:40:02.112Z' },
  ),
  devices: shape(z.strictObject({ items: z.array(deviceView) }), "The user's devices, oldest first (at most 100)", {
    items: [
      {
        id: DEVICE_ID,
        provider: 'webpush',
        token: WEB_PUSH_SUBSCRIPTION,
        createdAt: '2026-12-06T19:40:02.112Z',
        lastUsedAt: '2026-12-06T19:41:18.431Z',
      },
      {
        id: '01a24ce0-0a11-7000-8b5e-0c4f6a2d71e3',
        provider: 'apns',
        token: '5f1c8b0d2e7a4c9f3b6d1e8a0c2f4b7d9e1a3c5f7b9d2e4a6c8f0b1d3e5a7c9f',
        createdAt: '2026-12-06T19:40:04.870Z',
        lastUsedAt: null,
      },
    ],
  }),
} satisfies Record<string, Shape>;

export const DEVICE_PARAMS = {
  device: PARAMS.userId.extend({
    deviceId: z.string().meta({ description: 'The device id', examples: [DEVICE_ID] }),
  }),
};

const channelSwitches = z
  .partialRecord(z.enum(CHANNELS), z.boolean())
  .describe('Per channel: false opts out, true opts in (over a less specific false)');

export const PREFERENCE_EXAMPLES = {
  preferences: {
    channels: { email: false },
    categories: { 'marketing.*': false, 'comment.reply': { email: false } },
    quietHours: { start: '22:00', end: '07:00' },
  },
};

export const PREFERENCE_SHAPES = {
  preferences: shape(
    z.strictObject({
      channels: channelSwitches,
      categories: z
        .record(z.string(), z.union([z.boolean(), channelSwitches]))
        .describe('Per category ("comment.reply") or prefix ("marketing.*"): false, true, or per channel'),
      quietHours: z
        .strictObject({ start: z.string(), end: z.string() })
        .nullable()
        .describe(
          "HH:MM in the user's timezone (UTC if none): deliveries due then wait until the end (critical ones do not)",
        ),
    }),
    "The user's preferences; a user who never set any has the empty shape",
    PREFERENCE_EXAMPLES.preferences,
  ),
} satisfies Record<string, Shape>;

export const UNSUBSCRIBE_QUERY = z.object({
  token: z
    .string()
    .optional()
    .meta({
      description: 'The token of the link (names a user, a category and a channel; signed by Herald)',
      examples: ['WzEsImFkYSIsImNvbW1lbnQucmVwbHkiLCJlbWFpbCJd.3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    }),
});
