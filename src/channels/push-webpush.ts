/**
 * Web Push sender (RFC 8030 delivery, RFC 8291 `aes128gcm` payload encryption, RFC 8292 VAPID):
 * one `POST` to the subscription's endpoint per device and message.
 *
 * The payload is the JSON `{id, title, body, data, category}` (id: the notification's), encrypted
 * with the `web-push` library for the subscription's `p256dh` key and `auth` secret; the request
 * carries `TTL` (default one day), `Urgency` from the priority (critical/high → high, normal →
 * normal, bulk → low) and `Authorization: vapid t=<ES256 JWT>, k=<public key>` with `aud` the
 * endpoint's origin, `sub` the operator's subject and `exp` at most 12 h ahead (a JWT is reused per
 * origin for up to an hour). A browser chose the endpoint, so the request goes through the
 * egress-guarded client: a non-public address is never connected to without HERALD_EGRESS_ALLOW.
 *
 * Outcomes (it never throws): 201/202 (any 2xx) ok; 404/410 `dead` (the subscription expired or
 * was unsubscribed: the caller removes the device); 429, 5xx, 408, failures to connect and timeouts
 * transient (honouring Retry-After); 400, 403, 413 and any other answer permanent; a destination the
 * egress policy refuses permanent. A payload too large for one 4096-byte record is permanent before
 * any request.
 */
import webpush from 'web-push';
import type { Device } from '../core/devices.ts';
import type { Lane } from '../core/types.ts';
import type { GuardedHttpClient } from './egress-http.ts';
import type { PushMessage, PushOutcome, PushSender } from './push-sender.ts';
import { retryAfter } from './retry-after.ts';

export interface VapidKeys {
  /** Uncompressed P-256 public key, base64url (HERALD_VAPID_PUBLIC_KEY). */
  publicKey: string;
  /** The 32-byte P-256 private key, base64url (HERALD_VAPID_PRIVATE_KEY). */
  privateKey: string;
  /** `mailto:…` or `https://…` (HERALD_VAPID_SUBJECT): whom the push service may contact. */
  subject: string;
}

export interface WebPushOptions {
  vapid: VapidKeys;
  /** The egress-guarded client every request goes through. */
  http: GuardedHttpClient;
  /** Whole-request bound, connecting included. */
  timeoutMs: number;
  /** How long the push service keeps an undelivered message, seconds; default 86 400. */
  ttlSeconds?: number;
}

/**
 * Largest plaintext one aes128gcm record of 4096 bytes holds (RFC 8291 §4: the 86-byte header,
 * the 16-byte tag and one padding delimiter byte leave 3993); push services need not accept more.
 */
export const MAX_PAYLOAD_BYTES = 4096 - 86 - 16 - 1;

const URGENCY: Record<Lane, 'high' | 'normal' | 'low'> = {
  critical: 'high',
  high: 'high',
  normal: 'normal',
  bulk: 'low',
};

/** A VAPID JWT is valid this long (RFC 8292 allows up to 24 h) … */
const JWT_LIFETIME_S = 12 * 3600;
/** … and reused per audience this long, so that it never nears its expiry. */
const JWT_REUSE_MS = 3600 * 1000;

/** The payload a service worker receives (the `push` event's `data.json()`). */
export function webPushPayload(message: PushMessage): string {
  return JSON.stringify({
    id: message.notificationId,
    title: message.title,
    body: message.body,
    data: message.data,
    category: message.category,
  });
}

export class WebPushSender implements PushSender {
  readonly provider = 'webpush' as const;
  private readonly ttl: number;
  private readonly jwtByAudience = new Map<string, { authorization: string; until: number }>();

  constructor(private readonly options: WebPushOptions) {
    this.ttl = options.ttlSeconds ?? 86_400;
  }

  async send(device: Device, message: PushMessage): Promise<PushOutcome> {
    if (device.provider !== 'webpush') {
      return { ok: false, permanent: true, error: `not a Web Push device (${device.provider})` };
    }
    const payload = webPushPayload(message);
    const size = Buffer.byteLength(payload);
    if (size > MAX_PAYLOAD_BYTES) {
      return {
        ok: false,
        permanent: true,
        error: `the Web Push payload is ${size} bytes, more than the ${MAX_PAYLOAD_BYTES} one record holds`,
      };
    }
    let endpoint: URL;
    let request: { headers: Record<string, string>; body: Buffer };
    try {
      endpoint = new URL(device.token.endpoint);
      const details = webpush.generateRequestDetails(device.token, payload, {
        TTL: this.ttl,
        urgency: URGENCY[message.priority],
        contentEncoding: 'aes128gcm',
        headers: { Authorization: this.authorization(endpoint.origin) },
      });
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(details.headers)) headers[k.toLowerCase()] = String(v);
      request = { headers, body: details.body };
    } catch (e) {
      return { ok: false, permanent: true, error: `could not prepare the Web Push request: ${(e as Error).message}` };
    }

    const answer = await this.options.http.post(endpoint.href, {
      headers: request.headers,
      body: request.body,
      timeoutMs: this.options.timeoutMs,
    });
    if (answer.kind === 'not_allowed' || answer.kind === 'bad_url') {
      return { ok: false, permanent: true, error: answer.error };
    }
    if (answer.kind !== 'answer') {
      return { ok: false, permanent: false, error: `push service at ${endpoint.origin}: ${answer.error}` };
    }
    const { status } = answer;
    if (status >= 200 && status < 300) {
      const location = answer.headers.location;
      return { ok: true, detail: { status, ...(typeof location === 'string' ? { location } : {}) } };
    }
    const said = `push service at ${endpoint.origin} answered HTTP ${status}${excerpt(answer.body)}`;
    if (status === 404 || status === 410) return { ok: false, permanent: true, reason: 'token_dead', error: said };
    if (status === 408 || status === 429 || status >= 500) {
      return { ok: false, permanent: false, error: said, ...retryAfter(answer.headers['retry-after']) };
    }
    return { ok: false, permanent: true, error: said };
  }

  close(): Promise<void> {
    return this.options.http.close();
  }

  /** `vapid t=…, k=…` for an audience (an endpoint's origin), signed once and reused for a while. */
  private authorization(audience: string): string {
    const now = Date.now();
    const cached = this.jwtByAudience.get(audience);
    if (cached && cached.until > now) return cached.authorization;
    const { publicKey, privateKey, subject } = this.options.vapid;
    const exp = Math.floor(now / 1000) + JWT_LIFETIME_S;
    const headers = webpush.getVapidHeaders(audience, subject, publicKey, privateKey, 'aes128gcm', exp);
    // A handful of push services exist; the map stays small, but is bounded all the same.
    if (this.jwtByAudience.size >= 1000) this.jwtByAudience.clear();
    this.jwtByAudience.set(audience, { authorization: headers.Authorization, until: now + JWT_REUSE_MS });
    return headers.Authorization;
  }
}

/** `: <first 200 characters of the answer>` when it said anything. */
function excerpt(body: string): string {
  const text = body.trim().replace(/\s+/g, ' ').slice(0, 200);
  return text ? `: ${text}` : '';
}
