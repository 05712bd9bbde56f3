/**
 * A local Slack-compatible incoming webhook for tests: records every request (path, headers, body
 * parsed as JSON, time) and answers as the test's `respond` decides — by default as Slack does on
 * success (`200 ok`, text/plain). Each path is its own "channel": `url(name)` gives one, and the
 * n-th request to a path is counted on its own.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ChatRequest {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: any;
}

/** Slack answers in text/plain: `ok`, or an error code such as `no_service`. */
export interface ChatAnswer {
  status: number;
  text?: string;
  headers?: Record<string, string>;
  /** Milliseconds to wait before answering (a slow receiver). */
  delayMs?: number;
}

export type ChatRespond = (req: ChatRequest, nthForThisPath: number) => ChatAnswer;

export interface FakeChat {
  /** A webhook URL of its own for `name` (a path on this server). */
  url(name: string): string;
  received: ChatRequest[];
  to(name: string): ChatRequest[];
  close(): Promise<void>;
}

/** What Slack answers when something is wrong with the hook or the message. */
export const SLACK_ERRORS = {
  noService: { status: 404, text: 'no_service' },
  archived: { status: 410, text: 'channel_is_archived' },
  prohibited: { status: 403, text: 'action_prohibited' },
  invalidPayload: { status: 400, text: 'invalid_payload' },
} as const;

export async function startFakeChat(respond: ChatRespond = () => ({ status: 200, text: 'ok' })): Promise<FakeChat> {
  const received: ChatRequest[] = [];
  const perPath = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {}
      const path = req.url ?? '/';
      const r: ChatRequest = { at: Date.now(), path, headers: req.headers, body, json };
      received.push(r);
      const n = (perPath.get(path) ?? 0) + 1;
      perPath.set(path, n);
      const answer = respond(r, n);
      setTimeout(() => {
        if (res.destroyed) return; // the sender gave up waiting (timeout)
        res.statusCode = answer.status;
        res.setHeader('content-type', 'text/plain');
        for (const [name, value] of Object.entries(answer.headers ?? {})) res.setHeader(name, value);
        res.end(answer.text ?? '');
      }, answer.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const pathOf = (name: string) => `/services/${encodeURIComponent(name)}`;
  return {
    url: (name) => `http://127.0.0.1:${port}${pathOf(name)}`,
    received,
    to: (name) => received.filter((r) => r.path === pathOf(name)),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
