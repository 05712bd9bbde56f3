/**
 * Push devices: what a user registers so that push channels (Web Push, FCM, APNs) can reach it.
 *
 * A device is identified, within its user and provider, by its token's identity: the endpoint of
 * a Web Push subscription (its keys may be renewed under the same endpoint), the registration token
 * for FCM, the lower-case hex device token for APNs. Registering the same identity again is the
 * same device. Tokens here are already valid (device-input.ts checks them at the edge).
 */

export const DEVICE_PROVIDERS = ['webpush', 'fcm', 'apns'] as const;
export type DeviceProvider = (typeof DEVICE_PROVIDERS)[number];

/** How many devices one user may hold; registering one more is HERALD_ERR_TOO_MANY_DEVICES. */
export const MAX_DEVICES_PER_USER = 100;

/** A browser's PushSubscription, normalised: keys are unpadded base64url. */
export interface WebPushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export type DeviceToken =
  | { provider: 'webpush'; token: WebPushSubscription }
  | { provider: 'fcm'; token: string }
  | { provider: 'apns'; token: string };

export type Device = DeviceToken & {
  id: string;
  userId: string;
  createdAt: Date;
  /** When a push last went to this device; null until then. */
  lastUsedAt: Date | null;
};

/** The identity that makes two registrations the same device (within a user and provider). */
export function deviceIdentity(d: DeviceToken): string {
  return d.provider === 'webpush' ? d.token.endpoint : d.token;
}

/** The token as stored: Web Push subscriptions as JSON with a fixed key order, others as they are. */
export function serialiseDeviceToken(d: DeviceToken): string {
  if (d.provider !== 'webpush') return d.token;
  const { endpoint, keys } = d.token;
  return JSON.stringify({ endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
}

/** The inverse of serialiseDeviceToken. */
export function parseStoredDeviceToken(provider: DeviceProvider, stored: string): DeviceToken {
  if (provider === 'webpush') return { provider, token: JSON.parse(stored) as WebPushSubscription };
  return { provider, token: stored };
}
