/**
 * A local stand-in for Twilio's Messages API, for tests: plain HTTP on 127.0.0.1. It checks what
 * Twilio checks — Basic auth with the account sid and token, the path naming that sid, the form
 * fields — and answers as Twilio does: `201` with the message resource (`sid`, `status`,
 * `num_segments`), or an error object `{code, message, more_info, status}`. Each accepted request is
 * recorded; how to answer is the test's choice, per destination number.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TwilioRequest {
  at: number;
  headers: IncomingHttpHeaders;
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  /** The n-th request for this `To` number, from 1. */
  nth: number;
}

/** An answer: a Twilio error (`{status, code, message}`), a success with `num_segments`, extra headers, a delay. */
export type TwilioAnswer =
  | { kind: 'accept'; numSegments?: number | null; delayMs?: number }
  | { kind: 'error'; status: number; code: number; message: string; headers?: Record<string, string> }
  | { kind: 'raw'; status: number; body: string; headers?: Record<string, string> };

export interface FakeTwilio {
  url: string;
  accountSid: string;
  authToken: string;
  /** Requests that passed the auth, path and form checks. */
  received: TwilioRequest[];
  /** Requests refused by those checks, with the reason (a test expects none). */
  refused: string[];
  close(): Promise<void>;
}

export const TWILIO_ERRORS = {
  invalidTo: { code: 21211, message: "The 'To' number is not a valid phone number." },
  unsubscribed: { code: 21610, message: 'Attempt to send to unsubscribed recipient' },
} as const;

export async function startFakeTwilio(
  answer: (req: TwilioRequest) => TwilioAnswer = () => ({ kind: 'accept' }),
  credentials: { accountSid?: string; authToken?: string } = {},
): Promise<FakeTwilio> {
  const accountSid = credentials.accountSid ?? `AC${randomBytes(16).toString('hex')}`;
  const authToken = credentials.authToken ?? randomBytes(16).toString('hex');
  const received: TwilioRequest[] = [];
  const refused: string[] = [];
  const perTo = new Map<string, number>();
  const expectedPath = `/2010-04-01/Accounts/${accountSid}/Messages.json`;
  const expectedAuth = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`;

  const sendJson = (res: import('node:http').ServerResponse, status: number, json: unknown, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(json));
  };
  const refuse = (res: import('node:http').ServerResponse, status: number, code: number, message: string) => {
    refused.push(`${status} ${code} ${message}`);
    sendJson(res, status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== expectedPath)
        return refuse(res, 404, 20404, `no such resource ${req.url}`);
      if (req.headers.authorization !== expectedAuth) return refuse(res, 401, 20003, 'Authenticate');
      if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
        return refuse(res, 400, 20001, 'not a form');
      }
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const to = form.get('To');
      const from = form.get('From');
      const messagingServiceSid = form.get('MessagingServiceSid');
      const body = form.get('Body');
      if (!to) return refuse(res, 400, 21604, "A 'To' phone number is required.");
      if (!from === !messagingServiceSid) return refuse(res, 400, 21603, "A 'From' phone number is required.");
      if (!body) return refuse(res, 400, 21602, 'Message body is required.');
      const nth = (perTo.get(to) ?? 0) + 1;
      perTo.set(to, nth);
      const r: TwilioRequest = { at: Date.now(), headers: req.headers, to, from, messagingServiceSid, body, nth };
      received.push(r);
      const a = answer(r);
      if (a.kind === 'error') {
        const json = {
          code: a.code,
          message: a.message,
          more_info: `https://www.twilio.com/docs/errors/${a.code}`,
          status: a.status,
        };
        return sendJson(res, a.status, json, a.headers);
      }
      if (a.kind === 'raw') {
        res.writeHead(a.status, a.headers ?? {});
        return res.end(a.body);
      }
      const reply = () =>
        sendJson(res, 201, {
          sid: `SM${randomBytes(16).toString('hex')}`,
          account_sid: accountSid,
          to,
          from: from ?? '+15005550006',
          messaging_service_sid: messagingServiceSid,
          body,
          status: 'queued',
          num_segments: a.numSegments == null ? null : String(a.numSegments),
          error_code: null,
          error_message: null,
        });
      if (a.delayMs) setTimeout(reply, a.delayMs);
      else reply();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    accountSid,
    authToken,
    received,
    refused,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
