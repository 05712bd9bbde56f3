/**
 * A webhook receiver for chaos runs that keeps counts, not bodies (200,000 arrivals fit): per
 * `webhook-id` (the delivery id, the same on every attempt) how many times it came and when first,
 * which notification and user it was for, and whether every signature verified against the
 * cluster's webhook secret. From those: delivered (distinct ids), duplicated (requests beyond the
 * first per id) and `splitIds` — a notification × user that came under more than one webhook-id,
 * which would be a duplicate a receiver cannot recognise (must be 0).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook, webhookKey } from '../src/channels/webhook-signature.ts';
import { CHAOS_WEBHOOK_SECRET } from './cluster.ts';

export interface Arrival {
  webhookId: string;
  notificationId: string;
  userId: string;
  priority: string;
  /** Date.now() of the first arrival. */
  firstAt: number;
  count: number;
}

export interface CountingReceiver {
  /** Where users' webhookUrl points. */
  url: string;
  arrivals: Map<string, Arrival>;
  /** Every request, duplicates included. */
  requests(): number;
  delivered(): number;
  duplicated(): number;
  badSignatures(): number;
  /** Notification × user pairs that arrived under more than one webhook-id. */
  splitIds(): number;
  /** Called on each first arrival of a webhook-id. */
  onFirst: ((a: Arrival) => void) | null;
  close(): Promise<void>;
}

export async function startCountingReceiver(
  options: { delayMs?: number; secret?: string } = {},
): Promise<CountingReceiver> {
  const key = webhookKey(options.secret ?? CHAOS_WEBHOOK_SECRET);
  const arrivals = new Map<string, Arrival>();
  const idsOfPair = new Map<string, string>();
  let requests = 0;
  let bad = 0;
  let split = 0;
  const receiver: CountingReceiver = {
    url: '',
    arrivals,
    requests: () => requests,
    delivered: () => arrivals.size,
    duplicated: () => requests - arrivals.size,
    badSignatures: () => bad,
    splitIds: () => split,
    onFirst: null,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const webhookId = String(req.headers['webhook-id'] ?? '');
      const ts = Number(req.headers['webhook-timestamp']);
      if (!verifyWebhook(key, webhookId, ts, body, String(req.headers['webhook-signature'] ?? ''))) bad++;
      requests++;
      const seen = arrivals.get(webhookId);
      if (seen) seen.count++;
      else {
        let json: { id?: string; userId?: string; priority?: string } = {};
        try {
          json = JSON.parse(body);
        } catch {}
        const a: Arrival = {
          webhookId,
          notificationId: String(json.id),
          userId: String(json.userId),
          priority: String(json.priority),
          firstAt: Date.now(),
          count: 1,
        };
        arrivals.set(webhookId, a);
        const pair = `${a.notificationId} ${a.userId}`;
        const other = idsOfPair.get(pair);
        if (other === undefined) idsOfPair.set(pair, webhookId);
        else if (other !== webhookId) split++;
        receiver.onFirst?.(a);
      }
      const answer = () => {
        if (!res.destroyed) res.writeHead(204).end();
      };
      if (options.delayMs) setTimeout(answer, options.delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}
