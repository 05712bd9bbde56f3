/**
 * The guarded HTTP client against real sockets on loopback. Loopback stands in for both sides: a
 * block the policy allows (127.0.0.2, playing a public address) and one it refuses (127.0.0.1, the
 * service an attacker wants to reach). Names resolve through an injected resolver, so a test decides
 * what a lookup answers, and when.
 */
import type { LookupAddress } from 'node:dns';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GuardedHttpClient, type HttpOutcome, type Resolver } from './egress-http.ts';
import { EgressPolicy } from './egress-policy.ts';

interface TestServer {
  host: string;
  port: number;
  hits: { path: string; body: string }[];
  /** TCP connections accepted so far. */
  connections: number;
  answer: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

/** A self-signed certificate for the tests only (subjectAltName IP:127.0.0.2, DNS:tls.example; valid to 2126). */
const TEST_TLS = {
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsfcFRQg1IFDTS6kj
Kxa10VEIkcvDUUTWCHsKCs0MVbqhRANCAATdEu7h0csmjKMvpgjwQNIH1Jtu35Cd
weZ8YSR2/b37+xMmuW0ejHHrDL1sVBV+aMMdW8nMPClj8+LVLDXQr+qu
-----END PRIVATE KEY-----`,
  cert: `-----BEGIN CERTIFICATE-----
MIIBojCCAUegAwIBAgIUNVqIY0vUJoTpe018Yzl78Zk+hDowCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLaGVyYWxkLXRlc3QwIBcNMjYxMjA2MTk1NTQ4WhgPMjEyNjEx
MTIxOTU1NDhaMBYxFDASBgNVBAMMC2hlcmFsZC10ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAE3RLu4dHLJoyjL6YI8EDSB9Sbbt+QncHmfGEkdv29+/sTJrlt
Hoxx6wy9bFQVfmjDHVvJzDwpY/Pi1Sw10K/qrqNxMG8wHQYDVR0OBBYEFLbQ/goB
Uwjf/gdxJWrLRATXjNu5MB8GA1UdIwQYMBaAFLbQ/goBUwjf/gdxJWrLRATXjNu5
MA8GA1UdEwEB/wQFMAMBAf8wHAYDVR0RBBUwE4cEfwAAAoILdGxzLmV4YW1wbGUw
CgYIKoZIzj0EAwIDSQAwRgIhAIkI3pDxQBK9/csKm3acFp2IIGRCRZhrzDrJ3wj9
6A8YAiEAkFooN3WXE6516oyA6E1Osx935A0xhTz32ezJXHRXpLs=
-----END CERTIFICATE-----`,
};

async function listen(host: string, port = 0, tls = false): Promise<TestServer> {
  const hits: { path: string; body: string }[] = [];
  const s: TestServer = {
    host,
    port: 0,
    hits,
    connections: 0,
    answer: (_req, res) => res.end('ok'),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hits.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
      s.answer(req, res);
    });
  };
  const server: Server = tls ? createHttpsServer(TEST_TLS, onRequest) : createServer(onRequest);
  server.on('connection', () => s.connections++);
  await new Promise<void>((r) => server.listen(port, host, r));
  s.port = (server.address() as AddressInfo).port;
  return s;
}

const REQUEST = { headers: { 'content-type': 'text/plain' }, body: 'hello', timeoutMs: 3_000 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A resolver that answers from `answers` in turn (the last one again when they run out), counting calls. */
function scriptedResolver(answers: (LookupAddress[] | Error)[]): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolve = ((hostname, _options, callback) => {
    calls.push(hostname);
    const a = answers[Math.min(calls.length, answers.length) - 1] as LookupAddress[] | Error;
    setImmediate(() => (a instanceof Error ? callback(a as NodeJS.ErrnoException, []) : callback(null, a)));
  }) as Resolver & { calls: string[] };
  resolve.calls = calls;
  return resolve;
}

const v4 = (address: string): LookupAddress[] => [{ address, family: 4 }];

describe('GuardedHttpClient', () => {
  /** The service behind Herald: on 127.0.0.1, never to be reached unless allowed. */
  let inside: TestServer;
  /** A stand-in for a public receiver: 127.0.0.2, on the same port, allowed by the policies below. */
  let outside: TestServer;
  const clients: GuardedHttpClient[] = [];

  beforeAll(async () => {
    inside = await listen('127.0.0.1');
    outside = await listen('127.0.0.2', inside.port);
  });
  afterAll(async () => {
    await inside?.close();
    await outside?.close();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    inside.hits.length = 0;
    inside.connections = 0;
    outside.hits.length = 0;
    inside.answer = (_req, res) => res.end('ok');
    outside.answer = (_req, res) => res.end('ok');
  });

  function client(allow: string[], resolve?: Resolver, extra: { maxResponseBytes?: number; ca?: string } = {}) {
    const c = new GuardedHttpClient({ policy: new EgressPolicy(allow), resolve, ...extra });
    clients.push(c);
    return c;
  }

  it.each(['127.0.0.1', '0x7f000001', '2130706433', '0177.0.0.1', '127.1', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]'])(
    'never connects to %s, a spelling of 127.0.0.1: not_allowed, naming the address and the setting',
    async (host) => {
      const outcome = await client([]).post(`http://${host}:${inside.port}/hook`, REQUEST);
      expect(outcome.kind).toBe('not_allowed');
      expect((outcome as { error: string }).error).toMatch(/127\.0\.0\.1.*loopback.*HERALD_EGRESS_ALLOW/);
      expect(inside.hits).toHaveLength(0);
      expect(inside.connections, 'TCP connections to 127.0.0.1').toBe(0);
    },
  );

  it('never connects to a name that resolves to loopback (the system resolver: localhost)', async () => {
    const outcome = await client([]).post(`http://localhost:${inside.port}/hook`, REQUEST);
    expect(outcome).toMatchObject({ kind: 'not_allowed' });
    expect((outcome as { error: string }).error).toMatch(/^destination localhost resolves to (127\.0\.0\.1|::1)/);
    expect(inside.hits).toHaveLength(0);
    expect(inside.connections, 'TCP connections to 127.0.0.1').toBe(0);
  });

  it('sends when the allowance covers the address, and returns the answer', async () => {
    inside.answer = (_req, res) => {
      res.statusCode = 202;
      res.setHeader('x-seen', 'yes');
      res.end('accepted');
    };
    const outcome = await client(['127.0.0.0/8']).post(`http://localhost:${inside.port}/hook?x=1`, REQUEST);
    expect(outcome).toMatchObject({ kind: 'answer', status: 202, body: 'accepted', headers: { 'x-seen': 'yes' } });
    expect(inside.hits).toEqual([{ path: '/hook?x=1', body: 'hello' }]);
  });

  it('DNS rebinding: each connection is judged on the address its own lookup returned', async () => {
    // First lookup: the "public" address; the next: loopback. A check-then-connect client that
    // resolved twice would be fooled; here the socket connects to what the checked lookup returned.
    const resolve = scriptedResolver([v4('127.0.0.2'), v4('127.0.0.1')]);
    const c = client(['127.0.0.2/32'], resolve);
    outside.answer = (_req, res) => {
      res.setHeader('connection', 'close'); // the next request needs a new connection, so a new lookup
      res.end('ok');
    };
    const first = await c.post(`http://rebind.example:${inside.port}/a`, REQUEST);
    expect(first).toMatchObject({ kind: 'answer', status: 200 });
    await sleep(50);
    const second = await c.post(`http://rebind.example:${inside.port}/b`, REQUEST);
    expect(second).toMatchObject({ kind: 'not_allowed' });
    expect((second as { error: string }).error).toMatch(/rebind\.example resolves to 127\.0\.0\.1/);
    expect(resolve.calls).toEqual(['rebind.example', 'rebind.example']);
    expect(outside.hits.map((h) => h.path)).toEqual(['/a']);
    expect(inside.connections, 'TCP connections to 127.0.0.1').toBe(0);
  });

  it('connects only to the allowed addresses among those a name has', async () => {
    const resolve = scriptedResolver([[...v4('127.0.0.1'), ...v4('127.0.0.2')]]);
    const outcome = await client(['127.0.0.2/32'], resolve).post(`http://mixed.example:${inside.port}/m`, REQUEST);
    expect(outcome).toMatchObject({ kind: 'answer', status: 200 });
    expect(outside.hits).toHaveLength(1);
    expect(inside.connections, 'TCP connections to 127.0.0.1').toBe(0);
  });

  it('looks a name up once per connection, not once per request', async () => {
    const resolve = scriptedResolver([v4('127.0.0.2')]);
    const c = client(['127.0.0.2/32'], resolve);
    const before = outside.connections;
    for (let i = 0; i < 10; i++) {
      expect(await c.post(`http://keepalive.example:${inside.port}/k`, REQUEST)).toMatchObject({ status: 200 });
    }
    expect(outside.hits).toHaveLength(10);
    const connections = outside.connections - before;
    expect(connections).toBeLessThanOrEqual(3);
    expect(resolve.calls).toHaveLength(connections);
  });

  it('does not follow a redirect, not even to an allowed address', async () => {
    inside.answer = (_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', `http://127.0.0.1:${inside.port}/elsewhere`);
      res.end();
    };
    const outcome = await client(['127.0.0.0/8']).post(`http://127.0.0.1:${inside.port}/start`, REQUEST);
    expect(outcome).toMatchObject({ kind: 'answer', status: 302 });
    await sleep(100);
    expect(inside.hits.map((h) => h.path)).toEqual(['/start']);
  });

  it('says the same "could not connect" whether the port is closed, the name does not resolve, or it is too slow', async () => {
    const closed = await listen('127.0.0.1');
    const closedPort = closed.port;
    await closed.close();
    const refused = await client(['127.0.0.0/8']).post(`http://127.0.0.1:${closedPort}/`, REQUEST);
    const notFound = await client(
      [],
      scriptedResolver([Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' })]),
    ).post('http://nowhere.example/', REQUEST);
    // A lookup that answers only after the deadline: as slow as an unreachable host.
    const slowResolve: Resolver = (_h, _o, cb) => setTimeout(() => cb(null, v4('127.0.0.2')), 600);
    const started = Date.now();
    const slow = await client(['127.0.0.2/32'], slowResolve).post(`http://slow.example:${inside.port}/late`, {
      ...REQUEST,
      timeoutMs: 200,
    });
    expect(Date.now() - started).toBeLessThan(550);
    const outcomes: HttpOutcome[] = [refused, notFound, slow];
    for (const o of outcomes) expect(o).toEqual({ kind: 'could_not_connect', error: 'could not connect' });
    // The connection the slow lookup finally allowed must not carry the abandoned request.
    await sleep(800);
    expect(outside.hits).toHaveLength(0);
  });

  it('a receiver that connected but does not answer in time is a timeout', async () => {
    inside.answer = () => {}; // never answers
    const outcome = await client(['127.0.0.0/8']).post(`http://127.0.0.1:${inside.port}/hang`, {
      ...REQUEST,
      timeoutMs: 300,
    });
    expect(outcome).toEqual({ kind: 'timeout', error: 'timed out after 300 ms' });
    expect(inside.hits).toHaveLength(1);
  });

  it('reads at most maxResponseBytes of an answer', async () => {
    inside.answer = (_req, res) => res.end('x'.repeat(100_000));
    const outcome = await client(['127.0.0.0/8'], undefined, { maxResponseBytes: 1000 }).post(
      `http://127.0.0.1:${inside.port}/big`,
      REQUEST,
    );
    expect(outcome).toMatchObject({ kind: 'answer', status: 200 });
    expect((outcome as { body: string }).body).toHaveLength(1000);
  });

  it.each([
    ['ftp://example.com/x', /only http and https/],
    ['http://user:secret@example.com/', /credentials/],
    ['not a url', /does not parse/],
  ])('refuses %s without connecting (bad_url)', async (url, why) => {
    const outcome = await client([]).post(url, REQUEST);
    expect(outcome.kind).toBe('bad_url');
    expect((outcome as { error: string }).error).toMatch(why);
  });

  describe('over TLS', () => {
    let tlsInside: TestServer;
    let tlsOutside: TestServer;
    beforeAll(async () => {
      tlsInside = await listen('127.0.0.1', 0, true);
      tlsOutside = await listen('127.0.0.2', tlsInside.port, true);
    });
    afterAll(async () => {
      await tlsInside?.close();
      await tlsOutside?.close();
    });

    it('judges the name on the address it resolves to, as over plain HTTP', async () => {
      const toLoopback = client(['127.0.0.2/32'], scriptedResolver([v4('127.0.0.1')]), { ca: TEST_TLS.cert });
      const refused = await toLoopback.post(`https://tls.example:${tlsInside.port}/t`, REQUEST);
      expect(refused).toMatchObject({ kind: 'not_allowed' });
      expect((refused as { error: string }).error).toMatch(/tls\.example resolves to 127\.0\.0\.1/);
      expect(tlsInside.connections).toBe(0);

      const toAllowed = client(['127.0.0.2/32'], scriptedResolver([v4('127.0.0.2')]), { ca: TEST_TLS.cert });
      const sent = await toAllowed.post(`https://tls.example:${tlsInside.port}/t`, REQUEST);
      expect(sent).toMatchObject({ kind: 'answer', status: 200, body: 'ok' });
      expect(tlsOutside.hits).toHaveLength(1);
    });

    it('refuses a literal address before connecting', async () => {
      const outcome = await client([], undefined, { ca: TEST_TLS.cert }).post(
        `https://127.0.0.1:${tlsInside.port}/t`,
        REQUEST,
      );
      expect(outcome).toMatchObject({ kind: 'not_allowed' });
      expect(tlsInside.connections).toBe(0);
    });

    it('names a certificate it does not accept; a port that does not speak TLS is only "could not connect"', async () => {
      const before = tlsOutside.hits.length;
      const untrusted = await client(['127.0.0.2/32'], scriptedResolver([v4('127.0.0.2')])).post(
        `https://tls.example:${tlsInside.port}/t`,
        REQUEST,
      );
      expect(untrusted).toEqual({
        kind: 'could_not_connect',
        error: 'could not connect: TLS certificate not accepted (DEPTH_ZERO_SELF_SIGNED_CERT)',
      });
      const plain = await client(['127.0.0.0/8']).post(`https://127.0.0.1:${inside.port}/t`, REQUEST);
      expect(plain).toEqual({ kind: 'could_not_connect', error: 'could not connect' });
      expect(tlsOutside.hits).toHaveLength(before);
    });
  });
});
