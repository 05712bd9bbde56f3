/**
 * Local destinations for the `channels` benchmark.
 *
 * - An SMTP sink (smtp-server, as test/support/smtp-server.ts, with AUTH PLAIN/LOGIN required): it
 *   accepts every message and discards it, keeping only the `X-Herald-Delivery-Id` header (read
 *   from the raw header block, no MIME parsing) to count distinct deliveries and repeats.
 * - A lean Web Push service (a bench copy of test/support/fake-webpush.ts that still does the real
 *   protocol work on every request): HTTPS with the bench's certificate, the VAPID JWT checked (ES256
 *   signature, `aud` = this origin, `sub`, `exp` within 24 h, `k` = the expected key) and the
 *   `aes128gcm` body decrypted with the subscription's private key and auth secret. What it leaves
 *   out: the test fake's per-request answers, its record of every payload, and it imports the VAPID
 *   public key once (the key is fixed) instead of per request — the signature is still verified
 *   each time. Answers 201.
 */
import { createECDH, type ECDH, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
// @ts-expect-error http_ece ships no types
import ece from 'http_ece';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { SMTPServer } from 'smtp-server';

/** Counts distinct arrivals by key and remembers when the last new one came. */
export class ArrivalCounter {
  readonly seen = new Set<string>();
  duplicates = 0;
  first = 0;
  last = 0;
  private waiter: { count: number; resolve: (at: number) => void } | null = null;

  add(key: string): void {
    const at = performance.now();
    if (this.seen.has(key)) {
      this.duplicates++;
      return;
    }
    this.seen.add(key);
    if (this.seen.size === 1) this.first = at;
    this.last = at;
    if (this.waiter && this.seen.size >= this.waiter.count) {
      this.waiter.resolve(at);
      this.waiter = null;
    }
  }

  /** Resets for the next phase. */
  reset(): void {
    this.seen.clear();
    this.duplicates = 0;
    this.first = 0;
    this.last = 0;
  }

  /** Resolves with the time of the `count`-th distinct arrival; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs: number, what: string): Promise<number> {
    if (this.seen.size >= count) return Promise.resolve(this.last);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`${what}: ${this.seen.size} of ${count} arrived after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        count,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      };
    });
  }
}

export interface SmtpSink {
  port: number;
  arrivals: ArrivalCounter;
  /** Connections opened to it (the pool's size, when nothing broke). */
  connections(): number;
  close(): Promise<void>;
}

const DELIVERY_HEADER = /^X-Herald-Delivery-Id:\s*(\S+)/im;

export async function startSmtpSink(user: string, pass: string): Promise<SmtpSink> {
  const arrivals = new ArrivalCounter();
  let connections = 0;
  const server = new SMTPServer({
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    size: 1024 * 1024,
    onConnect(_session, cb) {
      connections++;
      cb();
    },
    onAuth(auth, _session, cb) {
      if (auth.username === user && auth.password === pass) cb(null, { user: auth.username });
      else cb(Object.assign(new Error('5.7.8 authentication failed'), { responseCode: 535 }));
    },
    onData(stream, _session, cb) {
      let head = '';
      stream.on('data', (c: Buffer) => {
        if (head.length < 8192 && !head.includes('\r\n\r\n')) head += c.toString('latin1');
      });
      stream.on('end', () => {
        const id = DELIVERY_HEADER.exec(head)?.[1];
        if (!id) return cb(Object.assign(new Error('5.6.0 no X-Herald-Delivery-Id'), { responseCode: 550 }));
        arrivals.add(id);
        cb();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    arrivals,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface PushSink {
  origin: string;
  arrivals: ArrivalCounter;
  /** Requests refused (a failed check), with why; should stay empty. */
  refused: string[];
  /** TLS connections accepted. */
  connections(): number;
  subscribe(): { endpoint: string; keys: { p256dh: string; auth: string } };
  close(): Promise<void>;
}

export async function startPushSink(options: {
  vapidPublicKey: string;
  subject: string;
  tls: { certFile: string; keyFile: string };
}): Promise<PushSink> {
  const subs = new Map<number, { ecdh: ECDH; auth: string }>();
  const arrivals = new ArrivalCounter();
  const refused: string[] = [];
  let connections = 0;
  let origin = '';
  const point = Buffer.from(options.vapidPublicKey, 'base64url');
  const vapidKey = await importJWK(
    {
      kty: 'EC',
      crv: 'P-256',
      x: point.subarray(1, 33).toString('base64url'),
      y: point.subarray(33, 65).toString('base64url'),
    },
    'ES256',
  );

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const refuse = (status: number, why: string) => {
      if (refused.length < 100) refused.push(why);
      res.writeHead(status, { 'content-type': 'text/plain' }).end(why);
    };
    const m = /^\/push\/(\d+)$/.exec(req.url ?? '');
    const id = m ? Number(m[1]) : 0;
    const sub = subs.get(id);
    if (req.method !== 'POST' || !sub) return refuse(404, `no such subscription: ${req.method} ${req.url}`);
    const auth = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '');
    if (!auth) return refuse(403, 'no VAPID authorization');
    const [, token = '', k = ''] = auth;
    if (k !== options.vapidPublicKey) return refuse(403, `unexpected VAPID key ${k}`);
    try {
      if (decodeProtectedHeader(token).alg !== 'ES256') throw new Error('alg is not ES256');
      const { payload } = await jwtVerify(token, vapidKey, {
        algorithms: ['ES256'],
        audience: origin,
        subject: options.subject,
      });
      const now = Math.floor(Date.now() / 1000);
      if (typeof payload.exp !== 'number' || payload.exp <= now || payload.exp > now + 24 * 3600) {
        throw new Error(`exp ${payload.exp} is not within 24 h`);
      }
    } catch (e) {
      return refuse(403, `VAPID JWT refused: ${(e as Error).message}`);
    }
    if (req.headers['content-encoding'] !== 'aes128gcm') return refuse(400, 'content-encoding');
    let notificationId: string;
    try {
      const plain: Buffer = ece.decrypt(Buffer.concat(chunks), {
        version: 'aes128gcm',
        privateKey: sub.ecdh,
        authSecret: sub.auth,
      });
      notificationId = String(JSON.parse(plain.toString('utf8')).id);
    } catch (e) {
      return refuse(400, `payload does not decrypt: ${(e as Error).message}`);
    }
    arrivals.add(`${id}/${notificationId}`);
    res.writeHead(201).end();
  };
  const server = createHttpsServer(
    { cert: await readFile(options.tls.certFile), key: await readFile(options.tls.keyFile) },
    (req, res) => {
      handle(req, res).catch((e) => {
        refused.push(`sink failed: ${(e as Error).message}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    },
  );
  server.keepAliveTimeout = 120_000;
  server.on('secureConnection', () => {
    connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let nextId = 0;
  return {
    origin,
    arrivals,
    refused,
    connections: () => connections,
    subscribe() {
      const id = ++nextId;
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16).toString('base64url');
      subs.set(id, { ecdh, auth });
      return { endpoint: `${origin}/push/${id}`, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth } };
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
