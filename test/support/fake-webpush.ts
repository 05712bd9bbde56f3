/**
 * A local push service for tests, speaking Web Push as a browser vendor's does: HTTPS (with a
 * certificate the test made) or plain HTTP on 127.0.0.1, one endpoint per subscription
 * (`/push/<n>`). For each request it checks what a real push service checks and what a browser
 * needs to show the message:
 * - `Authorization: vapid t=<JWT>, k=<public key>`: the JWT is ES256 under that key, `aud` is this
 *   server's origin, `exp` in the future and at most 24 h ahead, `sub` the expected subject, and `k`
 *   the expected VAPID public key;
 * - `Content-Encoding: aes128gcm`, a `TTL`, and a body that decrypts (RFC 8291, with http_ece) with
 *   the subscription's private key and auth secret — the subscription's keys are real: a P-256 key
 *   pair and a 16-byte secret made here, as a browser makes them.
 * A request that passes is recorded with its decrypted payload and answered as the test says
 * (default 201); one that fails a check is recorded in `refused` and answered 400/403.
 * `connections` counts TCP connections made to it (a test that expects none checks it).
 */
import { createECDH, type ECDH, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
// @ts-expect-error http_ece ships no types
import ece from 'http_ece';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';

export interface PushRequest {
  subscription: number;
  /** The n-th request to this subscription, from 1. */
  nth: number;
  at: number;
  ttl: number;
  urgency: string | null;
  /** The decrypted payload, parsed. */
  payload: any;
  claims: { aud: unknown; sub: unknown; exp: unknown };
}

export type PushAnswer = { status: number; headers?: Record<string, string>; body?: string; delayMs?: number };

export interface FakeSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  id: number;
}

export interface FakeWebPush {
  origin: string;
  received: PushRequest[];
  refused: string[];
  /** TCP (or TLS) connections accepted so far. */
  connections(): number;
  /** A new subscription, answered by `answer` (by the n-th request to it). */
  subscribe(answer?: (nth: number) => PushAnswer): FakeSubscription;
  requestsFor(sub: FakeSubscription): PushRequest[];
  close(): Promise<void>;
}

export async function startFakeWebPush(options: {
  vapidPublicKey: string;
  subject: string;
  /** PEM files for HTTPS; plain HTTP without them. */
  tls?: { certFile: string; keyFile: string };
}): Promise<FakeWebPush> {
  const subs = new Map<number, { ecdh: ECDH; auth: string; answer: (nth: number) => PushAnswer; n: number }>();
  const received: PushRequest[] = [];
  const refused: string[] = [];
  let connections = 0;
  let origin = '';

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const refuse = (status: number, why: string) => {
      refused.push(why);
      res.writeHead(status, { 'content-type': 'text/plain' }).end(why);
    };
    const m = /^\/push\/(\d+)$/.exec(req.url ?? '');
    const sub = m ? subs.get(Number(m[1])) : undefined;
    if (req.method !== 'POST' || !m || !sub) return refuse(404, `no such subscription: ${req.method} ${req.url}`);

    const auth = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '');
    if (!auth) return refuse(403, `no VAPID authorization: ${req.headers.authorization}`);
    const [, token = '', k = ''] = auth;
    if (k !== options.vapidPublicKey) return refuse(403, `unexpected VAPID key ${k}`);
    let claims: PushRequest['claims'];
    try {
      if (decodeProtectedHeader(token).alg !== 'ES256') throw new Error('alg is not ES256');
      const point = Buffer.from(k, 'base64url');
      const key = await importJWK(
        {
          kty: 'EC',
          crv: 'P-256',
          x: point.subarray(1, 33).toString('base64url'),
          y: point.subarray(33, 65).toString('base64url'),
        },
        'ES256',
      );
      const { payload } = await jwtVerify(token, key, {
        algorithms: ['ES256'],
        audience: origin,
        subject: options.subject,
      });
      const now = Math.floor(Date.now() / 1000);
      if (typeof payload.exp !== 'number' || payload.exp <= now || payload.exp > now + 24 * 3600) {
        throw new Error(`exp ${payload.exp} is not within 24 h`);
      }
      claims = { aud: payload.aud, sub: payload.sub, exp: payload.exp };
    } catch (e) {
      return refuse(403, `VAPID JWT refused: ${(e as Error).message}`);
    }
    if (req.headers['content-encoding'] !== 'aes128gcm') {
      return refuse(400, `content-encoding ${req.headers['content-encoding']}`);
    }
    const ttl = Number(req.headers.ttl);
    if (!Number.isInteger(ttl) || ttl < 0) return refuse(400, `TTL ${req.headers.ttl}`);
    let payload: unknown;
    try {
      const plain: Buffer = ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth });
      payload = JSON.parse(plain.toString('utf8'));
    } catch (e) {
      return refuse(400, `payload does not decrypt: ${(e as Error).message}`);
    }
    const nth = ++sub.n;
    received.push({
      subscription: Number(m[1]),
      nth,
      at: Date.now(),
      ttl,
      urgency: (req.headers.urgency as string | undefined) ?? null,
      payload,
      claims,
    });
    const a = sub.answer(nth);
    if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
    if (res.destroyed) return;
    res.writeHead(a.status, { 'content-type': 'text/plain', ...(a.headers ?? {}) }).end(a.body ?? '');
  };
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e) => {
      refused.push(`fake failed: ${(e as Error).message}`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  };

  const server = options.tls
    ? createHttpsServer(
        { cert: await readFile(options.tls.certFile), key: await readFile(options.tls.keyFile) },
        listener,
      )
    : createHttpServer(listener);
  server.on('connection', () => {
    connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  origin = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  let nextId = 0;

  return {
    origin,
    received,
    refused,
    connections: () => connections,
    subscribe(answer = () => ({ status: 201 })) {
      const id = ++nextId;
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16).toString('base64url');
      subs.set(id, { ecdh, auth, answer, n: 0 });
      return {
        id,
        endpoint: `${origin}/push/${id}`,
        keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth },
      };
    },
    requestsFor(sub) {
      return received.filter((r) => r.subscription === sub.id);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
