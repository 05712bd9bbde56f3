/**
 * Graceful shutdown of the HTTP API: a request in flight when Herald starts closing still gets its
 * answer (a POST being committed gets its 202), and a request that arrives afterwards on an open
 * connection is refused in Herald's error shape — 503 HERALD_ERR_UNAVAILABLE with Retry-After —
 * and told to reconnect (Connection: close).
 */
import { connect } from 'node:net';
import { expect, it } from 'vitest';
import { startTestHerald, TEST_API_KEY } from './support/herald.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Splits raw HTTP/1.1 responses read from one connection into status, headers and body. */
function responses(raw: string): { status: number; headers: Record<string, string>; body: string }[] {
  const out: { status: number; headers: Record<string, string>; body: string }[] = [];
  let rest = raw;
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers = Object.fromEntries(
      lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    );
    const length = Number(headers['content-length'] ?? 0);
    out.push({
      status: Number(statusLine?.split(' ')[1]),
      headers,
      body: rest.slice(end + 4, end + 4 + length),
    });
    rest = rest.slice(end + 4 + length);
  }
  return out;
}

it('finishes a request in flight at shutdown, and answers the next one on its connection 503 in Herald’s shape', async () => {
  const t = await startTestHerald({ store: 'pglite' });
  const socket = connect(Number(new URL(t.url).port), '127.0.0.1');
  try {
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString('utf8');
    });
    const body = JSON.stringify({ to: ['alice'], category: 'shutdown.test' });
    // The POST's headers and the first bytes of its body: it is in flight when the close begins.
    socket.write(
      `POST /v1/notifications HTTP/1.1\r\nhost: herald\r\nauthorization: Bearer ${TEST_API_KEY}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 5)}`,
    );
    await sleep(200);
    const stopped = t.stop();
    await sleep(300);
    // The rest of the body, then a second request on the same connection.
    socket.write(
      `${body.slice(5)}GET /v1/dead-letters HTTP/1.1\r\nhost: herald\r\nauthorization: Bearer ${TEST_API_KEY}\r\n\r\n`,
    );
    for (let i = 0; i < 100 && responses(received).length < 2; i++) await sleep(50);
    await stopped;

    const [first, second] = responses(received);
    expect(first?.status, received).toBe(202);
    expect(JSON.parse(first?.body ?? '{}')).toMatchObject({ status: 'accepted', recipients: 1 });
    expect(second?.status, received).toBe(503);
    expect(second?.headers).toMatchObject({ connection: 'close', 'retry-after': '1' });
    expect(JSON.parse(second?.body ?? '{}')).toMatchObject({ error: { code: 'HERALD_ERR_UNAVAILABLE' } });
  } finally {
    socket.destroy();
    await t.stop();
  }
});
