/**
 * PostgreSQL goes away under a running Herald (a TCP proxy in between is cut) and comes back:
 * - /readyz answers 503 without telling who asks where the database is;
 * - the log gets each kind of failure once in full and then counted summaries, not a stack trace
 *   per lane per poll (before: 134 stack traces in 10 s);
 * - the role lock's session is taken again when PostgreSQL is back.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { type Herald, startHerald } from '../src/herald.ts';
import { freshPostgresUrl } from './support/databases.ts';
import { eventually, TEST_API_KEY, TEST_JWT_SECRET, TEST_WEBHOOK_SECRET } from './support/herald.ts';

/** A TCP proxy to the local PostgreSQL that can be cut (every connection dropped, new ones refused) and restored. */
async function pgProxy() {
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const srv = createServer((client) => {
        const upstream = tcpConnect(5432, '127.0.0.1');
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('error', () => {});
          s.on('close', () => {
            sockets.delete(s);
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      server = srv;
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        port = (srv.address() as { port: number }).port;
        resolve();
      });
    });
  await listen();
  return {
    get port() {
      return port;
    },
    async cut() {
      const s = server;
      server = null;
      const closed = new Promise<void>((r) => (s ? s.close(() => r()) : r()));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
    restore: listen,
  };
}

let herald: Herald | null = null;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await herald?.stop().catch(() => {});
  herald = null;
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

describe('a PostgreSQL outage', () => {
  it('/readyz hides the address, the log is throttled, the role lock comes back', async () => {
    const db = await freshPostgresUrl();
    cleanups.push(() => db.drop());
    const proxy = await pgProxy();
    cleanups.push(() => proxy.cut());
    const dbName = new URL(db.url).pathname.slice(1);

    const lines: { level: number; msg: string; err?: { stack?: string }; suppressed?: number }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l));
        done();
      },
    });
    const config = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      HERALD_DATA_DIR: '/nonexistent-not-used',
      HERALD_API_KEYS: TEST_API_KEY,
      HERALD_JWT_SECRET: TEST_JWT_SECRET,
      HERALD_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
      HERALD_POLL_MS: '50',
      HERALD_PG_POOL_SIZE: '4',
      HERALD_PG_CONNECT_TIMEOUT_MS: '2000',
      DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}/${dbName}`,
    });
    herald = await startHerald(config, { logger: pino({ level: 'info' }, sink) });
    const url = herald.url as string;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);

    await proxy.cut();
    const outageStart = lines.length;
    const until = Date.now() + 4_000;
    const answers: { status: number; text: string }[] = [];
    while (Date.now() < until) {
      const ready = await fetch(`${url}/readyz`);
      answers.push({ status: ready.status, text: await ready.text() });
      await fetch(`${url}/v1/notifications`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: ['u1'], category: 'outage.test', title: 'during the outage' }),
      }).then((r) => r.text());
      await new Promise((r) => setTimeout(r, 100));
    }

    // /readyz: 503, and nothing about where the database is.
    const refused = answers.filter((a) => a.status === 503);
    expect(refused.length).toBeGreaterThan(answers.length / 2);
    for (const a of refused) {
      expect(JSON.parse(a.text).error.code).toBe('HERALD_ERR_UNAVAILABLE');
      expect(a.text).not.toContain('127.0.0.1');
      expect(a.text).not.toContain(String(proxy.port));
      expect(a.text).not.toContain(dbName);
    }

    // The log: each kind of failure once with its stack, not once per lane per poll (4 lanes
    // polling every 50 ms alone would be ~300 claim failures in these 4 s).
    const during = lines.slice(outageStart);
    const withStack = during.filter((l) => l.err?.stack);
    const claims = during.filter((l) => l.msg.startsWith('claim failed'));
    expect(withStack.length, during.map((l) => l.msg).join('\n')).toBeLessThanOrEqual(12);
    expect(claims.filter((l) => l.err?.stack).length).toBeLessThanOrEqual(3);
    expect(claims.length).toBeGreaterThan(0);
    expect(during.some((l) => l.msg.startsWith('readiness check'))).toBe(true);

    await proxy.restore();
    await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 'readyz after the outage', 20_000);
    // The role lock's session was cut with the rest; it is taken again.
    await eventually(() => lines.some((l) => l.msg.includes('role lock is held again')), 'the role lock back', 20_000);

    await herald.stop();
    herald = null;
    // Stopping writes the summaries still owed: what was left out was counted, not lost.
    const summaries = lines.filter((l) => l.msg.startsWith('claim failed') && (l.suppressed ?? 0) > 0);
    expect(summaries.length).toBeGreaterThan(0);
    expect(summaries.every((l) => l.err === undefined)).toBe(true);
  }, 90_000);
});
