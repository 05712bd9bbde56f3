/**
 * Push to Android and iOS apps through FCM HTTP v1: one `POST {base}/v1/projects/{project_id}/messages:send`
 * per device, authorised by an OAuth2 access token obtained with the service account (RFC 7523: an RS256
 * JWT assertion, `iss` = client_email, `aud` = token_uri, scope firebase.messaging, lifetime 1 h, POSTed to
 * `token_uri` as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`).
 *
 * Guarantees:
 * - The access token is cached and reused until shortly before its `expires_in` (a tenth of its lifetime,
 *   at most a minute, earlier); then one request renews it, and every send waiting meanwhile shares that
 *   one request. A failed token request is not cached.
 * - A `401` from FCM drops the token the send used (if it is still the cached one), gets a fresh one and
 *   retries that send once; a second `401` is transient.
 * - Outcomes (never thrown): `200` → sent (detail: FCM's message `name`). Dead token: errorCode
 *   `UNREGISTERED`, a `404 NOT_FOUND` in FCM's error format, or `400 INVALID_ARGUMENT` that FCM says is
 *   about `message.token`. Transient: 408, 429 and 5xx (honouring `Retry-After`), timeouts, failures to
 *   connect, a failed token request, a `404` that is not FCM's (a wrong base URL must not delete every
 *   device). Permanent: any other answer (another 400, 403 SENDER_ID_MISMATCH/PERMISSION_DENIED, 413).
 * - One send, token request and retry included, finishes within `timeoutMs`.
 * - The private key and access tokens never appear in an outcome.
 *
 * The base URL and `token_uri` are the operator's (trusted): requests go through one kept-alive undici
 * Agent (HTTPS with the system CAs and NODE_EXTRA_CA_CERTS), not through the egress-guarded client.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { Agent, request } from 'undici';
import type { Device } from '../core/devices.ts';
import { MASK } from '../redact.ts';
import type { ServiceAccount } from './fcm-service-account.ts';
import { failure, parseObject, readCapped } from './provider-answers.ts';
import type { PushMessage, PushOutcome, PushSender } from './push-sender.ts';
import { retryAfter } from './retry-after.ts';
import { undiciBackstopMs } from './undici-backstop.ts';

export interface FcmOptions {
  serviceAccount: ServiceAccount;
  /** Without a trailing slash; `https://fcm.googleapis.com` (HERALD_FCM_BASE_URL). */
  baseUrl: string;
  /** Bound on one send, token request and one retry included; default 10 000 (the worker's send budget). */
  timeoutMs?: number;
  /** Kept-alive connections per origin; default 64. */
  connections?: number;
  /** Test only: trust exactly these CAs (PEM) instead of the system's. */
  ca?: string | Buffer;
}

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** Assertion lifetime: Google accepts at most one hour. */
const ASSERTION_TTL_S = 3600;
const TRANSIENT_STATUS = new Set([408, 429]);

interface AccessToken {
  value: string;
  /** Epoch ms after which it is not used any more (renewal margin already taken off). */
  renewAt: number;
}

class TokenError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** The `fcm` push sender for the settings, or undefined when FCM is not configured. */
export function createFcmSender(options: FcmOptions | undefined): FcmSender | undefined {
  return options ? new FcmSender(options) : undefined;
}

export class FcmSender implements PushSender {
  readonly provider = 'fcm' as const;
  private readonly agent: Agent;
  private readonly sendUrl: string;
  private readonly key: KeyObject;
  private readonly timeoutMs: number;
  private cached: AccessToken | undefined;
  private pending: Promise<AccessToken> | undefined;

  constructor(private readonly options: FcmOptions) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.agent = new Agent({
      connections: options.connections ?? 64,
      connect: { timeout: this.timeoutMs, ...(options.ca ? { ca: options.ca } : {}) },
      headersTimeout: undiciBackstopMs(this.timeoutMs),
      bodyTimeout: undiciBackstopMs(this.timeoutMs),
    });
    const sa = options.serviceAccount;
    this.sendUrl = `${options.baseUrl.replace(/\/+$/, '')}/v1/projects/${encodeURIComponent(sa.projectId)}/messages:send`;
    this.key = createPrivateKey({ key: sa.privateKey, format: 'pem' });
  }

  async send(device: Device, message: PushMessage): Promise<PushOutcome> {
    if (device.provider !== 'fcm') {
      return { ok: false, permanent: true, error: `the FCM sender got a ${device.provider} device` };
    }
    const deadline = AbortSignal.timeout(this.timeoutMs);
    const body = JSON.stringify(fcmMessage(device.token, message));
    try {
      let token = await within(this.accessToken(), deadline);
      let answer = await this.post(token.value, body, deadline);
      if (answer.status === 401) {
        this.invalidate(token);
        token = await within(this.accessToken(), deadline);
        answer = await this.post(token.value, body, deadline);
      }
      // FCM's error message is its own text: the token is masked out of it too, should it be echoed.
      const outcome = classify(answer);
      return outcome.ok ? outcome : { ...outcome, error: this.hide(outcome.error) };
    } catch (e) {
      if (e instanceof TokenError) {
        return { ok: false, permanent: false, error: this.hide(e.message), ...optional(e.retryAfterMs) };
      }
      return { ok: false, permanent: false, error: this.hide(`request to FCM failed: ${failure(e)}`) };
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  /** The cached access token, or the one being fetched, or a new request for one. */
  private accessToken(): Promise<AccessToken> {
    if (this.cached && Date.now() < this.cached.renewAt) return Promise.resolve(this.cached);
    if (!this.pending) {
      const p = this.fetchToken().then((t) => {
        this.cached = t;
        return t;
      });
      this.pending = p;
      // Cleared whatever the result: a failure is not cached, the next send asks again.
      const clear = () => {
        if (this.pending === p) this.pending = undefined;
      };
      p.then(clear, clear);
    }
    return this.pending;
  }

  private invalidate(token: AccessToken): void {
    if (this.cached === token) this.cached = undefined;
  }

  private async fetchToken(): Promise<AccessToken> {
    const sa = this.options.serviceAccount;
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ scope: FCM_SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(sa.privateKeyId ? { kid: sa.privateKeyId } : {}) })
      .setIssuer(sa.clientEmail)
      .setAudience(sa.tokenUri)
      .setIssuedAt(now)
      .setExpirationTime(now + ASSERTION_TTL_S)
      .sign(this.key);
    const startedAt = Date.now();
    let status: number;
    let headers: Record<string, string | string[] | undefined>;
    let text: string;
    try {
      const res = await request(sa.tokenUri, {
        method: 'POST',
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.timeoutMs),
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          'user-agent': 'Herald-Push/1',
        },
        body: new URLSearchParams({ grant_type: JWT_BEARER, assertion }).toString(),
      });
      status = res.statusCode;
      headers = res.headers;
      text = await readCapped(res.body);
    } catch (e) {
      throw new TokenError(`FCM access token request to ${sa.tokenUri} failed: ${failure(e)}`);
    }
    const json = parseObject(text);
    if (status !== 200) {
      const what = [json?.error, json?.error_description].filter((x) => typeof x === 'string').join(': ');
      throw new TokenError(
        `FCM access token request to ${sa.tokenUri} answered HTTP ${status}${what ? `: ${what.slice(0, 300)}` : ''}`,
        retryAfter(headers['retry-after']).retryAfterMs,
      );
    }
    const value = json?.access_token;
    // Google sends a number; a string of digits is taken too. Missing: the assertion's hour.
    const expiresIn = Number(json?.expires_in ?? ASSERTION_TTL_S);
    if (typeof value !== 'string' || value === '' || !(expiresIn > 0)) {
      throw new TokenError(`FCM access token request to ${sa.tokenUri} answered without access_token/expires_in`);
    }
    const lifetimeMs = expiresIn * 1000;
    return { value, renewAt: startedAt + lifetimeMs - Math.min(60_000, lifetimeMs / 10) };
  }

  private async post(accessToken: string, body: string, signal: AbortSignal): Promise<FcmAnswer> {
    const res = await request(this.sendUrl, {
      method: 'POST',
      dispatcher: this.agent,
      signal,
      headers: {
        authorization: `Bearer ${accessToken}`,
        'content-type': 'application/json; charset=utf-8',
        accept: 'application/json',
        'user-agent': 'Herald-Push/1',
      },
      body,
    });
    const text = await readCapped(res.body);
    return { status: res.statusCode, headers: res.headers, json: parseObject(text) };
  }

  /** Masks the cached access token out of a text (the key itself never reaches one). */
  private hide(text: string): string {
    const token = this.cached?.value;
    return token && token.length >= 4 ? text.split(token).join(MASK) : text;
  }
}

interface FcmAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: Record<string, unknown> | null;
}

/** The v1 `message` for one device: notification, string-valued data, Android priority. */
export function fcmMessage(token: string, m: PushMessage): { message: Record<string, unknown> } {
  const notification: Record<string, string> = {};
  if (m.title !== null) notification.title = m.title;
  if (m.body !== null) notification.body = m.body;
  const data: Record<string, string> = { id: m.notificationId, category: m.category };
  if (m.data !== null) data.data = JSON.stringify(m.data);
  return {
    message: {
      token,
      ...(Object.keys(notification).length > 0 ? { notification } : {}),
      data,
      android: { priority: m.priority === 'critical' || m.priority === 'high' ? 'high' : 'normal' },
    },
  };
}

function classify(a: FcmAnswer): PushOutcome {
  if (a.status >= 200 && a.status < 300) {
    return { ok: true, detail: { provider: 'fcm', name: typeof a.json?.name === 'string' ? a.json.name : null } };
  }
  const err = googleError(a.json);
  const text = fcmErrorText(a.status, err);
  if (err && isDeadToken(a.status, err)) return { ok: false, permanent: true, reason: 'token_dead', error: text };
  if (TRANSIENT_STATUS.has(a.status) || a.status >= 500 || a.status === 401 || (a.status === 404 && !err)) {
    return { ok: false, permanent: false, error: text, ...retryAfter(a.headers['retry-after']) };
  }
  return { ok: false, permanent: true, error: text };
}

interface GoogleError {
  status: string | null;
  message: string | null;
  errorCode: string | null;
  tokenViolation: boolean;
}

/** `{"error": {"code", "message", "status", "details": [FcmError {errorCode}, BadRequest {fieldViolations}]}}`. */
function googleError(json: Record<string, unknown> | null): GoogleError | null {
  const e = json?.error;
  if (!e || typeof e !== 'object' || Array.isArray(e)) return null;
  const o = e as Record<string, unknown>;
  const details = Array.isArray(o.details) ? (o.details as unknown[]) : [];
  let errorCode: string | null = null;
  let tokenViolation = false;
  for (const d of details) {
    if (!d || typeof d !== 'object') continue;
    const r = d as Record<string, unknown>;
    if (typeof r.errorCode === 'string' && errorCode === null) errorCode = r.errorCode;
    if (Array.isArray(r.fieldViolations)) {
      for (const v of r.fieldViolations as unknown[]) {
        if (v && typeof v === 'object' && (v as Record<string, unknown>).field === 'message.token')
          tokenViolation = true;
      }
    }
  }
  return {
    status: typeof o.status === 'string' ? o.status : null,
    message: typeof o.message === 'string' ? o.message : null,
    errorCode,
    tokenViolation,
  };
}

function isDeadToken(status: number, e: GoogleError): boolean {
  if (e.errorCode === 'UNREGISTERED') return true;
  if (status === 404 && e.status === 'NOT_FOUND') return true;
  if (status === 400 && (e.status === 'INVALID_ARGUMENT' || e.errorCode === 'INVALID_ARGUMENT')) {
    return e.tokenViolation || /registration token/i.test(e.message ?? '');
  }
  return false;
}

/** `FCM answered HTTP 404: NOT_FOUND: UNREGISTERED: Requested entity was not found.` */
function fcmErrorText(status: number, e: GoogleError | null): string {
  const parts = [`FCM answered HTTP ${status}`];
  if (e?.status) parts.push(e.status);
  if (e?.errorCode && e.errorCode !== e.status) parts.push(e.errorCode);
  if (e?.message) parts.push(e.message.slice(0, 500));
  return parts.join(': ');
}

/** Waits for `p`, but no longer than `signal` allows. */
function within<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function optional(ms: number | undefined): { retryAfterMs?: number } {
  return ms === undefined ? {} : { retryAfterMs: ms };
}
