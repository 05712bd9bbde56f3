/**
 * A local stand-in for Google's OAuth2 token endpoint and FCM HTTP v1, for tests. It checks what Google
 * checks: the token endpoint takes only `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an
 * RS256 assertion that verifies against the service account's public key (iss = client_email, aud =
 * token_uri, scope firebase.messaging, iat/exp at most 1 h apart and current) and issues a random access
 * token with the test's `expires_in`; `messages:send` takes only a token it issued and that has not
 * expired (else `401 UNAUTHENTICATED`), the project in the path, and a v1 message body. It answers `200
 * {"name"}` or FCM's error JSON, as the test chooses per device token. Plain HTTP on 127.0.0.1, or HTTPS
 * with the given key and certificate.
 */
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

export interface FcmSendRequest {
  at: number;
  accessToken: string;
  token: string;
  message: Record<string, unknown>;
  /** The n-th accepted request for this device token, from 1. */
  nth: number;
}

export type FcmAnswer =
  /** `delayMs`: answer that much later (a slow FCM). */
  | { kind: 'accept'; delayMs?: number }
  | { kind: 'unregistered' }
  | { kind: 'invalid-token' }
  | {
      kind: 'error';
      status: number;
      googleStatus: string;
      message: string;
      errorCode?: string;
      headers?: Record<string, string>;
    }
  | { kind: 'unauthenticated' }
  | { kind: 'raw'; status: number; body: string; headers?: Record<string, string> };

export interface FakeFcm {
  /** The origin, for HERALD_FCM_BASE_URL. */
  url: string;
  projectId: string;
  /** The service-account file (its token_uri points here). */
  serviceAccountPath: string;
  /** The service account's fields, as in the file. */
  serviceAccount: Record<string, string>;
  /** Access tokens issued, in order. */
  issued: string[];
  /** Token requests whose assertion verified. */
  tokenRequests: number;
  /** Accepted messages:send requests (auth, path and body checked). */
  received: FcmSendRequest[];
  /** `401`s given for unknown or expired access tokens. */
  unauthenticated: number;
  /** Requests refused by the checks, with the reason (a test expects none). */
  refused: string[];
  /** Forget every issued token (as if revoked): the next send gets `401`. */
  revokeAll(): void;
  close(): Promise<void>;
}

export interface FakeFcmOptions {
  /** `expires_in` of issued tokens, seconds; default 3600. */
  expiresIn?: number;
  /** Delay before the token endpoint answers, ms. */
  tokenDelayMs?: number;
  /** HTTPS with this key and certificate (PEM). */
  tls?: { key: string; cert: string };
  /** Answer per send request; default accept. */
  answer?: (req: FcmSendRequest) => FcmAnswer;
}

export async function startFakeFcm(options: FakeFcmOptions = {}): Promise<FakeFcm> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const projectId = `herald-test-${randomBytes(3).toString('hex')}`;
  const clientEmail = `herald@${projectId}.iam.gserviceaccount.com`;
  const answer = options.answer ?? ((): FcmAnswer => ({ kind: 'accept' }));
  const tokens = new Map<string, number>(); // access token → expiry (epoch ms)
  const perToken = new Map<string, number>();
  const refused: string[] = [];
  const state = { issued: [] as string[], tokenRequests: 0, received: [] as FcmSendRequest[], unauthenticated: 0 };
  let tokenUri = '';

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method === 'POST' && path === '/token') {
        void onToken(req, body, res);
      } else if (req.method === 'POST' && path.startsWith('/v1/projects/')) {
        onSend(req, path, body, res);
      } else {
        json(res, 404, { error: 'not here' });
      }
    });
  };

  const onToken = async (req: IncomingMessage, body: string, res: ServerResponse) => {
    const form = new URLSearchParams(body);
    const refuse = (why: string) => {
      refused.push(`token: ${why}`);
      json(res, 400, { error: 'invalid_grant', error_description: why });
    };
    if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
      return refuse('not a form');
    }
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return refuse('bad grant_type');
    try {
      const { payload, protectedHeader } = await jwtVerify(form.get('assertion') ?? '', publicKey as KeyObject, {
        algorithms: ['RS256'],
        issuer: clientEmail,
        audience: tokenUri,
      });
      if (protectedHeader.kid !== 'key-1') return refuse('kid is not the private_key_id');
      if (payload.scope !== FCM_SCOPE) return refuse(`scope ${String(payload.scope)}`);
      if (typeof payload.iat !== 'number' || typeof payload.exp !== 'number') return refuse('no iat/exp');
      if (payload.exp - payload.iat > 3600) return refuse('lifetime over 1 h');
    } catch (e) {
      return refuse(`assertion: ${(e as Error).message}`);
    }
    state.tokenRequests++;
    if (options.tokenDelayMs) await new Promise((r) => setTimeout(r, options.tokenDelayMs));
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    const expiresIn = options.expiresIn ?? 3600;
    tokens.set(token, Date.now() + expiresIn * 1000);
    state.issued.push(token);
    json(res, 200, { access_token: token, expires_in: expiresIn, token_type: 'Bearer' });
  };

  const onSend = (req: IncomingMessage, path: string, body: string, res: ServerResponse) => {
    const auth = String(req.headers.authorization ?? '');
    const accessToken = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const expiry = tokens.get(accessToken);
    if (expiry === undefined || Date.now() >= expiry) {
      state.unauthenticated++;
      return googleError(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    }
    const refuse = (why: string) => {
      refused.push(`send: ${why}`);
      googleError(res, 400, 'INVALID_ARGUMENT', why);
    };
    if (path !== `/v1/projects/${projectId}/messages:send`) return refuse(`path ${path}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return refuse('body is not JSON');
    }
    const message = (parsed as { message?: unknown })?.message as Record<string, unknown> | undefined;
    if (!message || typeof message !== 'object') return refuse('no message');
    const keys = Object.keys(parsed as object);
    if (keys.length !== 1) return refuse(`unknown top-level fields ${keys.join(',')}`);
    if (typeof message.token !== 'string' || message.token === '') return refuse('no token');
    const data = message.data as Record<string, unknown> | undefined;
    if (data && Object.values(data).some((v) => typeof v !== 'string')) return refuse('data values must be strings');
    const n = message.notification as Record<string, unknown> | undefined;
    if (n && Object.entries(n).some(([k, v]) => !['title', 'body'].includes(k) || typeof v !== 'string')) {
      return refuse('bad notification');
    }
    const priority = (message.android as { priority?: unknown } | undefined)?.priority;
    if (priority !== undefined && priority !== 'high' && priority !== 'normal') return refuse('bad android.priority');

    const nth = (perToken.get(message.token) ?? 0) + 1;
    perToken.set(message.token, nth);
    const r: FcmSendRequest = { at: Date.now(), accessToken, token: message.token, message, nth };
    state.received.push(r);
    const a = answer(r);
    switch (a.kind) {
      case 'accept': {
        const name = `projects/${projectId}/messages/${randomBytes(8).toString('hex')}`;
        if (!a.delayMs) return json(res, 200, { name });
        setTimeout(() => {
          if (!res.destroyed) json(res, 200, { name });
        }, a.delayMs);
        return;
      }
      case 'unregistered':
        return googleError(res, 404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED');
      case 'invalid-token':
        return json(res, 400, {
          error: {
            code: 400,
            message: 'The registration token is not a valid FCM registration token',
            status: 'INVALID_ARGUMENT',
            details: [
              { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'INVALID_ARGUMENT' },
              {
                '@type': 'type.googleapis.com/google.rpc.BadRequest',
                fieldViolations: [{ field: 'message.token', description: 'The registration token is not valid' }],
              },
            ],
          },
        });
      case 'error':
        return googleError(res, a.status, a.googleStatus, a.message, a.errorCode, a.headers);
      case 'unauthenticated':
        state.unauthenticated++;
        return googleError(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
      case 'raw':
        res.writeHead(a.status, { 'content-type': 'text/plain', ...a.headers });
        return res.end(a.body);
    }
  };

  const server = options.tls
    ? createHttps({ key: options.tls.key, cert: options.tls.cert }, handler)
    : createHttp(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tokenUri = `${url}/token`;

  const serviceAccount = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: 'key-1',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    client_email: clientEmail,
    client_id: '1234567890',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: tokenUri,
  };
  const dir = mkdtempSync(join(tmpdir(), 'herald-fcm-'));
  const serviceAccountPath = join(dir, 'service-account.json');
  writeFileSync(serviceAccountPath, JSON.stringify(serviceAccount, null, 2), { mode: 0o600 });

  return {
    url,
    projectId,
    serviceAccountPath,
    serviceAccount,
    get issued() {
      return state.issued;
    },
    get tokenRequests() {
      return state.tokenRequests;
    },
    get received() {
      return state.received;
    },
    get unauthenticated() {
      return state.unauthenticated;
    },
    refused,
    revokeAll: () => tokens.clear(),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
  res.end(JSON.stringify(body));
}

function googleError(
  res: ServerResponse,
  status: number,
  googleStatus: string,
  message: string,
  errorCode?: string,
  headers?: Record<string, string>,
) {
  const details = errorCode ? [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] : [];
  json(res, status, { error: { code: status, message, status: googleStatus, details } }, headers);
}
