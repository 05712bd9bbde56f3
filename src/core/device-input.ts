/**
 * Validation of device registrations (POST /v1/users/{userId}/devices), done once at the edge, so
 * that a push channel never meets a token it cannot use:
 *
 * - `webpush`: the browser's PushSubscription JSON. `endpoint` is an https URL without credentials
 *   that the egress policy allows (the browser chose it, so a non-public literal or `localhost` is
 *   refused unless HERALD_EGRESS_ALLOW covers it); `keys.p256dh` is base64url of an uncompressed
 *   P-256 point (65 bytes, 0x04 first, on the curve); `keys.auth` is base64url of 16 bytes. Keys are
 *   stored unpadded base64url; `expirationTime` (what `PushSubscription.toJSON()` adds) is accepted
 *   and not kept.
 * - `fcm`: a registration token, 1–4096 printable ASCII characters without spaces.
 * - `apns`: a device token of 64 to 200 hex characters, an even number; stored lower-case.
 *
 * Every refusal is HERALD_ERR_VALIDATION naming the field (`token.keys.p256dh`, …).
 */
import { ECDH } from 'node:crypto';
import { z } from 'zod';
import type { DeviceToken } from './devices.ts';
import { validationError } from './errors.ts';
import { type DestinationCheck, parseOrThrow } from './input.ts';

export const DEVICE_LIMITS = {
  endpointLength: 2_000,
  fcmTokenLength: 4_096,
  apnsTokenMin: 64,
  apnsTokenMax: 200,
} as const;

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** The bytes of unpadded or padded base64url text; null when it is not base64url. */
export function base64urlBytes(text: string): Buffer | null {
  if (!BASE64URL.test(text)) return null;
  const bare = text.replace(/=+$/, '');
  if (bare.length % 4 === 1) return null;
  const bytes = Buffer.from(bare, 'base64url');
  // Round-trips only when no bits were dropped (trailing bits of the last character are zero).
  return bytes.toString('base64url') === bare ? bytes : null;
}

/** Why `text` is not a usable Web Push `p256dh` key, or null. */
export function p256dhProblem(text: string): string | null {
  const bytes = base64urlBytes(text);
  if (!bytes) return 'must be base64url';
  if (bytes.length !== 65 || bytes[0] !== 0x04) {
    return `must be an uncompressed P-256 point (65 bytes starting with 0x04), got ${bytes.length} bytes`;
  }
  try {
    ECDH.convertKey(bytes, 'prime256v1', undefined, undefined, 'uncompressed');
  } catch {
    return 'is not a point on the P-256 curve';
  }
  return null;
}

/** Why `text` is not a usable Web Push `auth` secret, or null. */
export function authSecretProblem(text: string): string | null {
  const bytes = base64urlBytes(text);
  if (!bytes) return 'must be base64url';
  if (bytes.length !== 16) return `must be 16 bytes, got ${bytes.length}`;
  return null;
}

const unpaddedBase64url = (problem: (s: string) => string | null) =>
  z
    .string()
    .max(200, 'at most 200 characters')
    .superRefine((s, ctx) => {
      const why = problem(s);
      if (why) ctx.addIssue({ code: 'custom', message: why });
    })
    .transform((s) => s.replace(/=+$/, ''));

const endpointSchema = z
  .url({ protocol: /^https$/, message: 'must be an https URL' })
  .max(DEVICE_LIMITS.endpointLength, `at most ${DEVICE_LIMITS.endpointLength} characters`)
  .refine((u) => {
    const parsed = URL.parse(u);
    return !parsed || (!parsed.username && !parsed.password);
  }, 'must not hold credentials (user:password@)');

const webPushSchema = z.strictObject({
  provider: z.literal('webpush'),
  token: z.strictObject({
    endpoint: endpointSchema,
    expirationTime: z.number().nullable().optional().describe('Accepted as browsers send it; not kept'),
    keys: z.strictObject({ p256dh: unpaddedBase64url(p256dhProblem), auth: unpaddedBase64url(authSecretProblem) }),
  }),
});

const fcmSchema = z.strictObject({
  provider: z.literal('fcm'),
  token: z
    .string()
    .min(1, 'must not be empty')
    .max(DEVICE_LIMITS.fcmTokenLength, `at most ${DEVICE_LIMITS.fcmTokenLength} characters`)
    .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'),
});

const apnsSchema = z.strictObject({
  provider: z.literal('apns'),
  token: z
    .string()
    .regex(/^[0-9A-Fa-f]*$/, 'must be hexadecimal')
    .min(DEVICE_LIMITS.apnsTokenMin, `must be at least ${DEVICE_LIMITS.apnsTokenMin} hex characters`)
    .max(DEVICE_LIMITS.apnsTokenMax, `at most ${DEVICE_LIMITS.apnsTokenMax} hex characters`)
    .refine((s) => s.length % 2 === 0, 'must have an even number of hex characters (whole bytes)')
    .transform((s) => s.toLowerCase()),
});

export const deviceRequestSchema = z.discriminatedUnion('provider', [webPushSchema, fcmSchema, apnsSchema], {
  error: (issue) => (issue.code === 'invalid_union' ? 'must be "webpush", "fcm" or "apns"' : undefined),
});

/**
 * The registration in `input`, normalised; HERALD_ERR_VALIDATION naming the field otherwise.
 * `checkDestination` refuses a Web Push endpoint Herald would never connect to.
 */
export function parseDeviceRequest(input: unknown, checkDestination?: DestinationCheck): DeviceToken {
  const r = parseOrThrow(deviceRequestSchema, input);
  if (r.provider !== 'webpush') return { provider: r.provider, token: r.token };
  const refused = checkDestination?.(r.token.endpoint);
  if (refused) throw validationError([{ field: 'token.endpoint', message: refused }]);
  const { endpoint, keys } = r.token;
  return { provider: 'webpush', token: { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } } };
}
