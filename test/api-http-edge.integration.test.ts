/**
 * The HTTP edge over raw TCP (node:net): request timeouts, what Node's parser refuses, oversized
 * headers, `Expect`, `Content-Encoding`, the connection cap, and ids that URLs would rewrite. Every
 * refusal must be in Herald's error shape, and the connection closed after it.
 */
import { type Socket, connect as tcpConnect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../src/core/errors.ts';
import { startTestHerald, TEST_API_KEY, type TestHerald } from './support/herald.ts';
import { countRows, expectError, expectNamesField, userToken } from './support/http.ts';
import { connectReady, notify, sleep } from './support/ws-client.ts';

const TIMEOUT_MS = 1_500;
/** Slack for a loaded machine; Node's default check interval alone would be 30 s. */
const CUT_OFF_SLACK_MS = 2_500;

const BODY = JSON.stringify({ to: ['alice'], category: 'comment.reply', title: 'New reply' });

interface RawExchange {
  /** Everything the server sent. */
  text: string;
  status: number | null;
  headers: Record<string, string>;
  json: any;
  /** Whether the server closed the connection (rather than the test's deadline ending it). */
  closedByServer: boolean;
  /** Milliseconds from connecting until the server closed the connection. */
  elapsedMs: number;
}

/** A connection that records what the server sends and when it closes. */
class RawConnection {
  readonly socket: Socket;
  readonly opened: number;
  private received = '';
  readonly closed: Promise<number>;
  readonly connected: Promise<void>;

  constructor(baseUrl: string) {
    const u = new URL(baseUrl);
    this.opened = Date.now();
    this.socket = tcpConnect({ host: u.hostname, port: Number(u.port), allowHalfOpen: true });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.received += d;
    });
    this.socket.on('error', () => {});
    this.connected = new Promise((resolve) => this.socket.once('connect', () => resolve()));
    this.closed = new Promise((resolve) => {
      // The server's FIN ('end') or a reset ('close'), whichever comes first.
      const done = () => resolve(Date.now() - this.opened);
      this.socket.once('end', done);
      this.socket.once('close', done);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  get text(): string {
    return this.received;
  }

  /** Waits until the server closes the connection (at most `deadlineMs`), then parses the answer. */
  async result(deadlineMs = 10_000): Promise<RawExchange> {
    const closedAt = await Promise.race([this.closed, sleep(deadlineMs).then(() => null)]);
    this.socket.destroy();
    return { ...parseResponse(this.received), closedByServer: closedAt !== null, elapsedMs: closedAt ?? -1 };
  }
}

function parseResponse(text: string): Pick<RawExchange, 'text' | 'status' | 'headers' | 'json'> {
  const [head = '', ...rest] = text.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1];
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let json: unknown = null;
  try {
    json = JSON.parse(rest.join('\r\n\r\n'));
  } catch {
    json = null;
  }
  return { text, status: status === undefined ? null : Number(status), headers, json };
}

/** Sends `request` at once, then waits for the answer and the close. */
async function exchange(baseUrl: string, request: string | Buffer): Promise<RawExchange> {
  const c = new RawConnection(baseUrl);
  c.write(request);
  return c.result();
}

/** Asserts a refusal in Herald's shape on a connection the server then closed. */
function expectRefusal(r: RawExchange, code: ErrorCode) {
  expect(r.status, r.text.slice(0, 400)).not.toBeNull();
  const error = expectError({ status: r.status ?? 0, json: r.json, text: r.text }, code);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  expect(r.closedByServer, 'the server closed the connection').toBe(true);
  return error;
}

const post = (path: string, body: string, extra = '') =>
  `POST ${path} HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer ${TEST_API_KEY}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

describe(`with HERALD_REQUEST_TIMEOUT_MS=${TIMEOUT_MS}`, () => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({
      env: { HERALD_REQUEST_TIMEOUT_MS: String(TIMEOUT_MS), HERALD_WS_HEARTBEAT_MS: '1000' },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  describe('request timeouts', () => {
    it('answers 408 and closes a connection whose headers stall, close to the setting', async () => {
      const c = new RawConnection(t.url);
      c.write(`POST /v1/notifications HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n`);
      const r = await c.result();
      const error = expectRefusal(r, 'HERALD_ERR_REQUEST_TIMEOUT');
      expect(error.message).toContain(`HERALD_REQUEST_TIMEOUT_MS (${TIMEOUT_MS} ms)`);
      expect(r.elapsedMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
      expect(r.elapsedMs).toBeLessThan(TIMEOUT_MS + CUT_OFF_SLACK_MS);
    });

    it('answers 408 and closes a connection whose body stalls half-way; nothing is stored', async () => {
      const c = new RawConnection(t.url);
      const request = post('/v1/notifications', BODY);
      c.write(request.slice(0, request.length - Math.floor(BODY.length / 2)));
      const r = await c.result();
      expectRefusal(r, 'HERALD_ERR_REQUEST_TIMEOUT');
      expect(r.elapsedMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
      expect(r.elapsedMs).toBeLessThan(TIMEOUT_MS + CUT_OFF_SLACK_MS);
      expect(await countRows(t, 'notifications')).toBe(0);
    });

    it('does not serve the rest of a timed-out request, nor a request after it on that connection', async () => {
      const c = new RawConnection(t.url);
      const request = post('/v1/notifications', BODY);
      const cut = request.length - 10;
      c.write(request.slice(0, cut));
      await eventuallyText(c, '408');
      c.write(request.slice(cut) + post('/v1/notifications', BODY));
      await sleep(1_000); // time for either request to be stored, were it served
      const r = await c.result();
      expect(r.text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(await countRows(t, 'notifications')).toBe(0);
    });

    it('closes a connection that never sends a byte', async () => {
      const r = await new RawConnection(t.url).result();
      expectRefusal(r, 'HERALD_ERR_REQUEST_TIMEOUT');
      expect(r.elapsedMs).toBeLessThan(TIMEOUT_MS + CUT_OFF_SLACK_MS);
    });

    it('serves a request that arrives slowly but completely within the setting', async () => {
      const c = new RawConnection(t.url);
      const request = post('/v1/notifications', BODY, 'Connection: close\r\n');
      const pieces = 6;
      const size = Math.ceil(request.length / pieces);
      for (let i = 0; i < pieces; i++) {
        c.write(request.slice(i * size, (i + 1) * size));
        await sleep(TIMEOUT_MS / (2 * pieces));
      }
      const r = await c.result();
      expect(r.status, r.text).toBe(202);
      expect(r.json.id).toBeTypeOf('string');
    });

    it('leaves an idle keep-alive connection open past the setting, and serves its next request', async () => {
      const c = new RawConnection(t.url);
      c.write('GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n');
      await eventuallyText(c, '200 OK');
      const before = c.text.length;
      await sleep(TIMEOUT_MS * 2 + 500);
      expect(c.text.length, 'nothing more was sent while idle (no 408)').toBe(before);
      c.write('GET /healthz HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n');
      const r = await c.result();
      expect(r.closedByServer).toBe(true);
      expect(r.text.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
      expect(r.text).not.toContain('408');
    });

    it('leaves a WebSocket open past the setting', async () => {
      const { client } = await connectReady(t.url, userToken('ws-timeout-user'));
      try {
        await sleep(TIMEOUT_MS * 2 + 500);
        expect(client.closedWith).toBeNull();
        await notify(t, 'ws-timeout-user', { title: 'still here' });
        const [n] = await client.waitForNotifications(1);
        expect(n?.title).toBe('still here');
      } finally {
        await client.close();
      }
    });
  });

  describe("what Node's parser refuses, in Herald's shape", () => {
    const bad: [string, string, ErrorCode][] = [
      ['a malformed request line', 'GET /healthz HTTP/1.1 extra\r\nHost: herald\r\n\r\n', 'HERALD_ERR_BAD_REQUEST'],
      ['an unknown HTTP version', 'GET /healthz HTTP/7.1\r\nHost: herald\r\n\r\n', 'HERALD_ERR_BAD_REQUEST'],
      ['an invalid method token', 'G(T /healthz HTTP/1.1\r\nHost: herald\r\n\r\n', 'HERALD_ERR_BAD_REQUEST'],
      [
        'a space in a header name',
        'GET /healthz HTTP/1.1\r\nHost: herald\r\nBad Header: x\r\n\r\n',
        'HERALD_ERR_BAD_REQUEST',
      ],
      [
        'a header line without a colon',
        'GET /healthz HTTP/1.1\r\nHost: herald\r\nnocolon\r\n\r\n',
        'HERALD_ERR_BAD_REQUEST',
      ],
      [
        'a control character in a header value',
        'GET /healthz HTTP/1.1\r\nHost: herald\r\nX-A: a\x01b\r\n\r\n',
        'HERALD_ERR_BAD_REQUEST',
      ],
      [
        'a non-numeric Content-Length',
        post('/v1/notifications', BODY).replace(/Content-Length: \d+/, 'Content-Length: abc'),
        'HERALD_ERR_BAD_REQUEST',
      ],
      [
        'two different Content-Lengths',
        post('/v1/notifications', BODY, 'Content-Length: 3\r\n'),
        'HERALD_ERR_BAD_REQUEST',
      ],
      [
        'Content-Length with Transfer-Encoding: chunked',
        post('/v1/notifications', '', 'Transfer-Encoding: chunked\r\n').replace(
          'Content-Length: 0',
          'Content-Length: 5',
        ) + '5\r\nhello\r\n0\r\n\r\n',
        'HERALD_ERR_BAD_REQUEST',
      ],
      [
        'a chunk size that is not hex',
        post('/v1/notifications', '', 'Transfer-Encoding: chunked\r\n').replace('Content-Length: 0\r\n', '') +
          'zz\r\nhello\r\n0\r\n\r\n',
        'HERALD_ERR_BAD_REQUEST',
      ],
      ['an HTTP/1.1 request without Host', 'GET /healthz HTTP/1.1\r\n\r\n', 'HERALD_ERR_BAD_REQUEST'],
      [
        'headers over 16 KiB',
        `GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`,
        'HERALD_ERR_HEADERS_TOO_LARGE',
      ],
      [
        'many headers over 16 KiB together',
        `GET /healthz HTTP/1.1\r\nHost: herald\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(40)}\r\n`).join('')}\r\n`,
        'HERALD_ERR_HEADERS_TOO_LARGE',
      ],
      [
        'an Expect other than 100-continue',
        post('/v1/notifications', BODY, 'Expect: teapot\r\n'),
        'HERALD_ERR_EXPECTATION_FAILED',
      ],
    ];
    for (const [name, request, code] of bad) {
      it(`${name} → ${code}, connection closed, nothing stored`, async () => {
        const before = await countRows(t, 'notifications');
        const r = await exchange(t.url, request);
        expectRefusal(r, code);
        expect(r.elapsedMs).toBeLessThan(TIMEOUT_MS);
        expect(await countRows(t, 'notifications')).toBe(before);
      });
    }

    it('still serves a well-formed request with Expect: 100-continue', async () => {
      const r = await exchange(t.url, post('/v1/notifications', BODY, 'Expect: 100-continue\r\nConnection: close\r\n'));
      expect(r.text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /);
    });

    it('answers HTTP/1.0 without Host', async () => {
      const r = await exchange(t.url, 'GET /healthz HTTP/1.0\r\n\r\n');
      expect(r.status, r.text).toBe(200);
    });
  });

  describe('Content-Encoding', () => {
    for (const coding of ['gzip', 'br', 'deflate', 'x-custom', 'identity, gzip', 'GZIP']) {
      it(`refuses a body with Content-Encoding: ${coding} (415), before the JSON parser`, async () => {
        const before = await countRows(t, 'notifications');
        const body = coding.toLowerCase().includes('gzip') ? gzipSync(BODY) : Buffer.from(BODY);
        const res = await fetch(`${t.url}/v1/notifications`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${TEST_API_KEY}`,
            'content-type': 'application/json',
            'content-encoding': coding,
          },
          body: new Uint8Array(body),
        });
        const json = await res.json();
        const error = expectError({ status: res.status, json }, 'HERALD_ERR_UNSUPPORTED_ENCODING');
        expectNamesField(error, 'Content-Encoding');
        expect(res.headers.get('accept-encoding')).toBe('identity');
        expect(await countRows(t, 'notifications')).toBe(before);
      });
    }

    it('accepts Content-Encoding: identity, and a body-less request with any Content-Encoding', async () => {
      const ok = await t.api('POST', '/v1/notifications', JSON.parse(BODY), { 'content-encoding': 'identity' });
      expect(ok.status, JSON.stringify(ok.json)).toBe(202);
      const get = await t.api('GET', `/v1/notifications/${ok.json.id}`, undefined, { 'content-encoding': 'gzip' });
      expect(get.status).toBe(200);
    });
  });

  describe('ids that URLs would rewrite or hide', () => {
    it('refuses a user id with an invisible character in the URL, naming userId', async () => {
      const r = await t.api('PUT', '/v1/users/%E2%80%8Balice', { email: 'alice@example.com' });
      const error = expectError(r, 'HERALD_ERR_VALIDATION');
      expectNamesField(error, 'userId');
      expect(error.message).toContain('U+200B');
    });

    it('refuses a dot segment as a recipient, naming to.0', async () => {
      const r = await t.api('POST', '/v1/notifications', { to: ['..'], category: 'comment.reply' });
      const error = expectError(r, 'HERALD_ERR_VALIDATION');
      expectNamesField(error, 'to.0');
    });

    it('refuses a dot segment as a user id in the URL, as sent (a client would collapse it)', async () => {
      for (const segment of ['..', '.', '%2E%2E', '%2e']) {
        const r = await exchange(
          t.url,
          `GET /v1/users/${segment}/inbox HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nConnection: close\r\n\r\n`,
        );
        expectNamesField(
          expectError({ status: r.status ?? 0, json: r.json, text: r.text }, 'HERALD_ERR_VALIDATION'),
          'userId',
        );
      }
    });
  });
});

describe('HERALD_MAX_CONNECTIONS=3', () => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ env: { HERALD_MAX_CONNECTIONS: '3' } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** A keep-alive connection that has been served once (so it is surely counted). */
  async function servedConnection(): Promise<RawConnection> {
    const c = new RawConnection(t.url);
    c.write('GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n');
    await eventuallyText(c, '200 OK');
    return c;
  }

  it('closes the connection over the cap unanswered, counts WebSockets, and frees a slot on close', async () => {
    const a = await servedConnection();
    const b = await servedConnection();
    const { client: ws } = await connectReady(t.url, userToken('cap-user'));
    try {
      // Three open: two HTTP keep-alive connections and a WebSocket. The fourth is closed.
      const over = new RawConnection(t.url);
      over.write('GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n');
      const refused = await over.result(5_000);
      expect(refused.closedByServer, 'the fourth connection was closed').toBe(true);
      expect(refused.text).toBe('');
      // The three are still served.
      a.write('GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n');
      await eventuallyText(a, '200 OK', 2);
      expect(ws.closedWith).toBeNull();

      // Closing the WebSocket frees its slot.
      await ws.close();
      const next = await eventuallyServed(t.url);
      expect(next.status).toBe(200);
    } finally {
      a.socket.destroy();
      b.socket.destroy();
      if (!ws.closedWith) await ws.close();
    }
  });
});

/** Waits until `c` has received `text` `times` times. */
async function eventuallyText(c: RawConnection, text: string, times = 1, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (c.text.split(text).length - 1 < times) {
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(c.text)}`);
    await sleep(20);
  }
}

/** Retries a one-shot request until a connection is accepted (the server notices a close at once, but the test cannot know when). */
async function eventuallyServed(baseUrl: string, timeoutMs = 5_000): Promise<RawExchange> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await exchange(baseUrl, 'GET /healthz HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n');
    if (r.status !== null || Date.now() > end) return r;
    await sleep(50);
  }
}
