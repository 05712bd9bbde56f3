/**
 * A local webhook receiver for tests: records every request (headers, body, time, signature
 * validity) and answers as the test's `respond` function decides (status, delay).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook, webhookKey } from '../../src/channels/webhook-signature.ts';
import { TEST_WEBHOOK_SECRET } from './herald.ts';

export interface ReceivedWebhook {
  at: number;
  id: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: any;
  signatureValid: boolean;
}

export interface Receiver {
  url: string;
  received: ReceivedWebhook[];
  /** Distinct webhook-ids seen. */
  distinctIds(): Set<string>;
  close(): Promise<void>;
}

/** How to answer one request: a status, or a status with a delay before answering and extra headers. */
export type Respond = (
  req: ReceivedWebhook,
  nthForThisId: number,
) => { status: number; delayMs?: number; headers?: Record<string, string> } | number;

export async function startReceiver(respond: Respond = () => 200, secret = TEST_WEBHOOK_SECRET): Promise<Receiver> {
  const key = webhookKey(secret);
  const received: ReceivedWebhook[] = [];
  const perId = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id'] ?? '');
      const ts = Number(req.headers['webhook-timestamp']);
      const sig = String(req.headers['webhook-signature'] ?? '');
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {}
      const r: ReceivedWebhook = {
        at: Date.now(),
        id,
        headers: req.headers,
        body,
        json,
        signatureValid: verifyWebhook(key, id, ts, body, sig),
      };
      received.push(r);
      const n = (perId.get(id) ?? 0) + 1;
      perId.set(id, n);
      const answer = respond(r, n);
      const { status, delayMs = 0, headers = {} } = typeof answer === 'number' ? { status: answer } : answer;
      setTimeout(() => {
        if (res.destroyed) return; // the sender gave up waiting (timeout)
        res.statusCode = status;
        for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
        res.end();
      }, delayMs);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    distinctIds: () => new Set(received.map((r) => r.id)),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
