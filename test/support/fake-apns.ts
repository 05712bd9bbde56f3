/**
 * A local stand-in for Apple's APNs provider API, for tests: HTTP/2 over TLS on 127.0.0.1, with a
 * self-signed certificate made by openssl (the client trusts it through `ca`). It checks what APNs
 * checks — the ES256 provider token (signature against the test's public key, `kid`, `iss`), the
 * `/3/device/{token}` path, `apns-topic`, `apns-push-type` and a JSON body — and answers as APNs does:
 * `200` with `apns-id`, or a status with `{"reason": …}` (410 also with `timestamp`). A request that
 * fails a check gets `403 InvalidProviderToken` or `400 BadTopic`/`BadPath`/`BadPayload` and is
 * recorded in `refused`. Sessions are counted; `goaway()` ends each open one as APNs does.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import {
  constants,
  createSecureServer,
  type Http2SecureServer,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, jwtVerify } from 'jose';

export interface ApnsRequest {
  deviceToken: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** The provider token as sent, and its verified `iat`. */
  jwt: string;
  iat: number;
  /** Which session (from 1) carried it. */
  session: number;
}

export type ApnsAnswer =
  /** `delayMs`: accept that much later (a slow APNs). */
  | { status: 200; delayMs?: number }
  | { status: number; reason: string; headers?: Record<string, string> }
  /** Never answer (a hung stream). */
  | { status: 'hang' };

/** An APNs test key: the .p8 file the sender reads, and its public half for the fake. */
export interface ApnsTestKey {
  dir: string;
  p8Path: string;
  privateKeyPem: string;
  publicKey: KeyObject;
  keyId: string;
  teamId: string;
  cleanup(): void;
}

export function makeApnsTestKey(): ApnsTestKey {
  const dir = mkdtempSync(join(tmpdir(), 'herald-apns-'));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const p8Path = join(dir, 'AuthKey_ABC123DEFG.p8');
  writeFileSync(p8Path, privateKeyPem, { mode: 0o600 });
  return {
    dir,
    p8Path,
    privateKeyPem,
    publicKey,
    keyId: 'ABC123DEFG',
    teamId: 'TEAM123456',
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface FakeApns {
  url: string;
  /** The fake's self-signed certificate (PEM), for the client's `ca`. */
  ca: string;
  received: ApnsRequest[];
  refused: string[];
  /** HTTP/2 sessions accepted so far. */
  sessions(): number;
  /** PING frames received from clients so far. */
  pings(): number;
  /** Sends GOAWAY on every open session and closes it. */
  goaway(): void;
  /** Cuts every open session's connection, without a GOAWAY (a dropped network path). */
  drop(): void;
  close(): Promise<void>;
}

export async function startFakeApns(
  key: ApnsTestKey,
  topic: string,
  answer: (req: ApnsRequest) => ApnsAnswer = () => ({ status: 200 }),
): Promise<FakeApns> {
  const certDir = mkdtempSync(join(tmpdir(), 'herald-apns-cert-'));
  const keyPath = join(certDir, 'key.pem');
  const certPath = join(certDir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  const ca = readFileSync(certPath, 'utf8');
  const server: Http2SecureServer = createSecureServer({ key: readFileSync(keyPath), cert: ca });
  rmSync(certDir, { recursive: true, force: true });

  const received: ApnsRequest[] = [];
  const refused: string[] = [];
  const open = new Set<ServerHttp2Session>();
  let sessionCount = 0;
  let pingCount = 0;
  const sessionNumber = new WeakMap<ServerHttp2Session, number>();
  server.on('session', (s) => {
    sessionCount += 1;
    sessionNumber.set(s, sessionCount);
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('ping', () => {
      pingCount += 1;
    });
  });

  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('end', async () => {
      const reply = (status: number, json?: unknown, extra: Record<string, string> = {}) => {
        if (stream.destroyed) return;
        stream.respond({ [constants.HTTP2_HEADER_STATUS]: status, ...extra });
        stream.end(json === undefined ? undefined : JSON.stringify(json));
      };
      const refuse = (status: number, reason: string, why: string) => {
        refused.push(why);
        reply(status, { reason });
      };
      const path = String(headers[constants.HTTP2_HEADER_PATH]);
      const m = /^\/3\/device\/([0-9a-f]{64,200})$/.exec(path);
      if (headers[constants.HTTP2_HEADER_METHOD] !== 'POST' || !m?.[1]) return refuse(400, 'BadPath', `path ${path}`);
      const auth = String(headers.authorization ?? '');
      const jwt = auth.startsWith('bearer ') ? auth.slice('bearer '.length) : '';
      let iat: number;
      try {
        const header = decodeProtectedHeader(jwt);
        if (header.kid !== key.keyId) throw new Error(`kid ${String(header.kid)}`);
        const { payload } = await jwtVerify(jwt, key.publicKey, { algorithms: ['ES256'], issuer: key.teamId });
        if (typeof payload.iat !== 'number') throw new Error('no iat');
        iat = payload.iat;
      } catch (e) {
        return refuse(403, 'InvalidProviderToken', `token: ${(e as Error).message}`);
      }
      if (headers['apns-topic'] !== topic) return refuse(400, 'BadTopic', `topic ${String(headers['apns-topic'])}`);
      if (headers['apns-push-type'] !== 'alert') return refuse(400, 'InvalidPushType', 'push type');
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        if (!body || typeof body.aps !== 'object') throw new Error('no aps');
      } catch (e) {
        return refuse(400, 'PayloadEmpty', `body: ${(e as Error).message}`);
      }
      const req: ApnsRequest = {
        deviceToken: m[1],
        headers,
        body,
        jwt,
        iat,
        session: sessionNumber.get(stream.session as ServerHttp2Session) ?? 0,
      };
      received.push(req);
      const a = answer(req);
      if (a.status === 'hang') return;
      if (a.status === 200) {
        const ok = () => reply(200, undefined, { 'apns-id': String(headers['apns-id']) });
        if ('delayMs' in a && a.delayMs) setTimeout(ok, a.delayMs);
        else ok();
        return;
      }
      const extra = 'reason' in a ? (a.headers ?? {}) : {};
      const json: Record<string, unknown> = { reason: 'reason' in a ? a.reason : 'Unknown' };
      if (a.status === 410) json.timestamp = Date.now();
      reply(a.status, json, { 'apns-id': String(headers['apns-id']), ...extra });
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    ca,
    received,
    refused,
    sessions: () => sessionCount,
    pings: () => pingCount,
    goaway: () => {
      for (const s of open) s.close();
    },
    drop: () => {
      for (const s of open) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
