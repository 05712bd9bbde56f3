/**
 * A fast webhook receiver for benchmarks: answers 200 at once on kept-alive connections and
 * records, per webhook-id (the delivery id), when it first arrived and which notification it
 * carried. It does not verify signatures (test/support/receiver.ts does, for correctness tests).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface Arrival {
  /** performance.now() of the first arrival. */
  at: number;
  notificationId: string;
}

export interface WebhookReceiver {
  url: string;
  /** First arrival of each webhook-id. */
  arrivals: Map<string, Arrival>;
  /** Requests that repeated a webhook-id already seen. */
  duplicates(): number;
  /** Resolves when `count` distinct webhook-ids have arrived (with the time of the last one), or rejects after `timeoutMs`. */
  waitForDistinct(count: number, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

// The body starts {"type":"notification","id":"<uuid>", …: the first "id" is the notification's.
const NOTIFICATION_ID = /"id":"([0-9a-f-]{36})"/;

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const arrivals = new Map<string, Arrival>();
  let duplicates = 0;
  let lastNew = 0;
  let waiter: { count: number; resolve: (at: number) => void } | null = null;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const id = String(req.headers['webhook-id'] ?? '');
      if (arrivals.has(id)) duplicates++;
      else {
        const m = NOTIFICATION_ID.exec(Buffer.concat(chunks).toString('utf8'));
        arrivals.set(id, { at, notificationId: m?.[1] ?? '' });
        lastNew = at;
        if (waiter && arrivals.size >= waiter.count) {
          waiter.resolve(lastNew);
          waiter = null;
        }
      }
      res.statusCode = 200;
      res.end();
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    arrivals,
    duplicates: () => duplicates,
    waitForDistinct(count, timeoutMs) {
      if (arrivals.size >= count) return Promise.resolve(lastNew);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiter = null;
          reject(new Error(`the receiver saw ${arrivals.size} of ${count} webhooks after ${timeoutMs} ms`));
        }, timeoutMs);
        waiter = {
          count,
          resolve: (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        };
      });
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
