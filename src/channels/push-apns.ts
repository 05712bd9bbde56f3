/**
 * APNs sender (provider `apns`): one push to one iOS device over Apple's HTTP/2 provider API,
 * `POST {base}/3/device/{token}`, with token (ES256 JWT) authentication.
 *
 * Guarantees:
 * - One long-lived HTTP/2 session carries every push. When it closes, errors or is sent a GOAWAY,
 *   the next push opens a new one (streams already running on the old one finish there). A PING
 *   every `pingIntervalMs` keeps it alive through idle periods; an unanswered PING ends it.
 * - One provider token (JWT `{iss: team id, iat}`, header `{alg: ES256, kid: key id}`) is reused for
 *   every push and replaced once it is `tokenRefreshMs` old (40 min; Apple accepts 20 to 60). After
 *   `ExpiredProviderToken` it is replaced at the next push — but never sooner than 20 minutes after
 *   it was made, since Apple refuses more frequent updates (`TooManyProviderTokenUpdates`).
 * - `apns-id` is derived from the delivery id and the device id: a retry of the same push carries
 *   the same id. `apns-priority` is 10 for critical and high deliveries, 5 otherwise;
 *   `apns-expiration` is now + `expirationSeconds`.
 * - It never throws. 200 → ok (detail: the `apns-id`); 410, or 400 `BadDeviceToken`,
 *   `DeviceTokenNotForTopic`, `Unregistered` → dead; 429, 5xx, `ExpiredProviderToken`, the other
 *   provider-token refusals (`InvalidProviderToken`, `MissingProviderToken`: the operator's key or
 *   ids, fixable within the retry window, like a refused Twilio login), failures to connect, a reset
 *   stream and timeouts → transient; any other answer → permanent, with Apple's `reason`.
 *   A payload over Apple's 4 KiB limit is refused here, permanently, without a request.
 *
 * The base URL is the operator's (trusted, like the key): it does not go through the egress guard.
 * The private key is only ever used to sign; it is not part of any outcome or error.
 */
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from 'node:http2';
import { SignJWT } from 'jose';
import type { Device } from '../core/devices.ts';
import type { PushMessage, PushOutcome, PushSender } from './push-sender.ts';
import { retryAfter } from './retry-after.ts';

export interface ApnsOptions {
  /** PEM of the .p8 auth key (PKCS#8, P-256); config.apns.privateKey. */
  privateKey: string;
  /** HERALD_APNS_KEY_ID: the JWT's `kid`. */
  keyId: string;
  /** HERALD_APNS_TEAM_ID: the JWT's `iss`. */
  teamId: string;
  /** HERALD_APNS_TOPIC: the bundle id, sent as `apns-topic`. */
  topic: string;
  /** HERALD_APNS_BASE_URL, e.g. `https://api.push.apple.com`. */
  baseUrl: string;
  /** Bound on one push, connecting included; default 10 000 ms. */
  timeoutMs?: number;
  /** How long APNs keeps trying to reach an offline device (`apns-expiration`); default 1 day. */
  expirationSeconds?: number;
  /** Keep-alive PING interval on the session; default 60 000 ms. */
  pingIntervalMs?: number;
  /** Age at which the provider token is replaced; default 40 min, clamped to 20..55 min. */
  tokenRefreshMs?: number;
  /** Extra trusted CA (PEM) for a test double's certificate; production uses the system's CAs. */
  ca?: string | Buffer;
  /** Clock, for tests; default Date.now. */
  now?: () => number;
}

/** Apple refuses payloads larger than this (bytes) for alert pushes. */
export const APNS_MAX_PAYLOAD_BYTES = 4096;
const MIN_TOKEN_AGE_MS = 20 * 60_000;
const MAX_TOKEN_AGE_MS = 55 * 60_000;
const MAX_ANSWER_BYTES = 16 * 1024;

/** Reasons that say the device token will never work again (APNs documents them with 400/410). */
const DEAD_REASONS = new Set(['BadDeviceToken', 'DeviceTokenNotForTopic', 'Unregistered']);
/** 403 reasons that blame the provider token (the operator's key and ids), not the message. */
const TOKEN_REASONS = new Set(['ExpiredProviderToken', 'InvalidProviderToken', 'MissingProviderToken']);

/** The `apns-id` of a push: a UUID (version 8, name-based on SHA-256) of the delivery and device. */
export function apnsId(deliveryId: string, deviceId: string): string {
  const h = createHash('sha256').update(`herald-apns\n${deliveryId}\n${deviceId}`).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x80;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The APNs payload of a message: the alert, and Herald's own fields beside `aps`. */
export function apnsPayload(message: PushMessage): Record<string, unknown> {
  const alert: Record<string, string> = {};
  if (message.title) alert.title = message.title;
  if (message.body) alert.body = message.body;
  return { aps: { alert }, id: message.notificationId, category: message.category, data: message.data };
}

export class ApnsSender implements PushSender {
  readonly provider = 'apns' as const;
  private readonly key: KeyObject;
  private readonly origin: string;
  private readonly timeoutMs: number;
  private readonly expirationSeconds: number;
  private readonly pingIntervalMs: number;
  private readonly tokenRefreshMs: number;
  private readonly now: () => number;
  private session: ClientHttp2Session | undefined;
  private pinger: NodeJS.Timeout | undefined;
  private token: { jwt: Promise<string>; issuedAt: number; expired: boolean } | undefined;
  private closed = false;

  constructor(private readonly options: ApnsOptions) {
    this.key = createPrivateKey({ key: options.privateKey, format: 'pem' });
    if (this.key.asymmetricKeyType !== 'ec' || this.key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('the APNs auth key must be a P-256 private key');
    }
    this.origin = new URL(options.baseUrl).origin;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.expirationSeconds = options.expirationSeconds ?? 86_400;
    this.pingIntervalMs = options.pingIntervalMs ?? 60_000;
    this.tokenRefreshMs = Math.min(MAX_TOKEN_AGE_MS, Math.max(MIN_TOKEN_AGE_MS, options.tokenRefreshMs ?? 40 * 60_000));
    this.now = options.now ?? Date.now;
  }

  async send(device: Device, message: PushMessage): Promise<PushOutcome> {
    if (device.provider !== 'apns') {
      return { ok: false, permanent: true, error: `the APNs sender got a ${device.provider} device` };
    }
    if (this.closed) return { ok: false, permanent: false, error: 'the APNs sender is closed' };
    const body = JSON.stringify(apnsPayload(message));
    if (Buffer.byteLength(body) > APNS_MAX_PAYLOAD_BYTES) {
      return {
        ok: false,
        permanent: true,
        error: `the APNs payload is ${Buffer.byteLength(body)} bytes, over Apple's limit of ${APNS_MAX_PAYLOAD_BYTES}`,
      };
    }
    const id = apnsId(message.deliveryId, device.id);
    let jwt: string;
    const token = this.currentToken();
    try {
      jwt = await token.jwt;
    } catch (e) {
      this.token = undefined;
      return { ok: false, permanent: false, error: `signing the APNs provider token failed: ${describe(e)}` };
    }
    const headers = {
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: `/3/device/${encodeURIComponent(device.token)}`,
      authorization: `bearer ${jwt}`,
      'apns-topic': this.options.topic,
      'apns-push-type': 'alert',
      'apns-priority': message.priority === 'critical' || message.priority === 'high' ? '10' : '5',
      'apns-id': id,
      'apns-expiration': String(Math.floor(this.now() / 1000) + this.expirationSeconds),
      'content-type': 'application/json',
    };

    let answer: { status: number; headers: IncomingHttpHeaders; text: string };
    try {
      answer = await this.request(headers, body);
    } catch (e) {
      return { ok: false, permanent: false, error: `request to APNs failed: ${describe(e)}` };
    }
    const { status } = answer;
    if (status === 200) {
      const returned = answer.headers['apns-id'];
      return { ok: true, detail: { provider: 'apns', apnsId: typeof returned === 'string' ? returned : id } };
    }
    const reason = reasonOf(answer.text);
    const error = `APNs answered HTTP ${status}${reason ? `: ${reason}` : ''}`;
    if (status === 410 || (reason !== null && DEAD_REASONS.has(reason))) {
      return { ok: false, permanent: true, reason: 'token_dead', error };
    }
    if (reason === 'ExpiredProviderToken' && this.token === token) token.expired = true;
    if (status === 429 || status >= 500 || (status === 403 && reason !== null && TOKEN_REASONS.has(reason))) {
      return { ok: false, permanent: false, error, ...retryAfter(answer.headers['retry-after']) };
    }
    return { ok: false, permanent: true, error };
  }

  async close(): Promise<void> {
    this.closed = true;
    const session = this.session;
    this.dropSession(session);
    if (!session || session.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => session.destroy(), this.timeoutMs);
      timer.unref();
      session.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The provider token to use now: reused until it is `tokenRefreshMs` old, or refused and 20 min old. */
  private currentToken(): { jwt: Promise<string>; issuedAt: number; expired: boolean } {
    const now = this.now();
    const t = this.token;
    if (t) {
      const age = now - t.issuedAt;
      if (age < this.tokenRefreshMs && !(t.expired && age >= MIN_TOKEN_AGE_MS)) return t;
    }
    const jwt = new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: this.options.keyId })
      .setIssuer(this.options.teamId)
      .setIssuedAt(Math.floor(now / 1000))
      .sign(this.key);
    this.token = { jwt, issuedAt: now, expired: false };
    return this.token;
  }

  /** The live session, or a new one (connecting in the background; requests wait for it). */
  private getSession(): ClientHttp2Session {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    const session = connect(this.origin, this.options.ca ? { ca: this.options.ca } : {});
    this.session = session;
    const drop = () => this.dropSession(session);
    session.on('error', drop);
    session.on('close', drop);
    // After a GOAWAY Node closes the session once its streams end; new pushes go to a new one.
    session.on('goaway', drop);
    session.on('connect', () => {
      if (this.session !== session) return;
      // A PING still unanswered one interval later means the path is dead: end the session.
      let awaiting = false;
      this.pinger = setInterval(() => {
        if (awaiting) return session.destroy();
        awaiting = true;
        const sent = session.ping((err) => {
          awaiting = false;
          if (err) session.destroy();
        });
        if (!sent) session.destroy();
      }, this.pingIntervalMs);
      this.pinger.unref();
    });
    return session;
  }

  private dropSession(session: ClientHttp2Session | undefined): void {
    if (!session || this.session !== session) return;
    this.session = undefined;
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = undefined;
  }

  private request(
    headers: Record<string, string>,
    body: string,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
    return new Promise((resolve, reject) => {
      let stream: ClientHttp2Stream;
      const session = this.getSession();
      try {
        stream = session.request(headers);
      } catch (e) {
        this.dropSession(session);
        reject(e);
        return;
      }
      const timer = setTimeout(() => {
        // A session that never connected is of no use to the next push either.
        if (session.connecting) session.destroy();
        stream.close(constants.NGHTTP2_CANCEL);
        reject(new Error(`timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      let status = 0;
      let responseHeaders: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (h: IncomingHttpHeaders & IncomingHttpStatusHeader) => {
        status = Number(h[constants.HTTP2_HEADER_STATUS]);
        responseHeaders = h;
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_ANSWER_BYTES) chunks.push(chunk);
      });
      stream.on('end', () => {
        clearTimeout(timer);
        if (status === 0) reject(new Error('the stream ended without an answer'));
        else resolve({ status, headers: responseHeaders, text: Buffer.concat(chunks).toString('utf8') });
      });
      stream.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      // After 'end' this is a no-op; before it, the answer was cut off (RST_STREAM, a dropped session).
      stream.on('close', () => {
        clearTimeout(timer);
        reject(new Error(`the stream was closed before the answer ended (HTTP/2 code ${stream.rstCode ?? 'unknown'})`));
      });
      stream.end(body);
    });
  }
}

/** The sender for config.apns (undefined when APNs is not configured). */
export function createApnsSender(
  options: ApnsOptions | undefined,
  extra: Partial<Pick<ApnsOptions, 'timeoutMs'>> = {},
): ApnsSender | undefined {
  return options ? new ApnsSender({ ...options, ...extra }) : undefined;
}

function reasonOf(text: string): string | null {
  try {
    const v: unknown = JSON.parse(text);
    const reason = v && typeof v === 'object' ? (v as { reason?: unknown }).reason : undefined;
    return typeof reason === 'string' ? reason.slice(0, 200) : null;
  } catch {
    return null;
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? `${code} ${e.message}` : e.message;
  }
  return String(e);
}
