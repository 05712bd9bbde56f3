/**
 * A real SMTP server for tests (smtp-server on a random loopback port): it requires AUTH with the
 * given user and password, parses every message that reaches the end of DATA (mailparser), and
 * answers each according to its recipient: `respond(rcpt, n)` (n = how many messages for that
 * recipient reached DATA so far, this one included) returns 250 (accept) or an SMTP code and text.
 * `rejectRcpt(rcpt)` may refuse a recipient at RCPT TO instead; `delayMs(rcpt, n)` holds the answer
 * at the end of DATA back that long (a slow server).
 */
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  rcpt: string;
  /** What the server answered at the end of DATA: 250, or the refusal's code. */
  answered: number;
  parsed: ParsedMail;
  raw: string;
}

export type SmtpAnswer = 250 | { code: number; text: string };

export interface TestSmtpServer {
  port: number;
  received: ReceivedMail[];
  /** Successful and failed logins, as the server's onAuth saw them. */
  logins: { method: string; username: string; password: string; ok: boolean }[];
  close(): Promise<void>;
}

export async function startSmtpServer(options: {
  user: string;
  pass: string;
  respond?: (rcpt: string, n: number) => SmtpAnswer;
  rejectRcpt?: (rcpt: string) => { code: number; text: string } | null;
  /** Milliseconds to wait before answering the end of DATA (default none). */
  delayMs?: (rcpt: string, n: number) => number;
  /** Listen on this port (default: any free one). */
  port?: number;
}): Promise<TestSmtpServer> {
  const received: ReceivedMail[] = [];
  const logins: TestSmtpServer['logins'] = [];
  const counts = new Map<string, number>();
  const refusal = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code });
  const server = new SMTPServer({
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, cb) {
      const ok = auth.username === options.user && auth.password === options.pass;
      logins.push({ method: auth.method, username: auth.username ?? '', password: auth.password ?? '', ok });
      if (ok) cb(null, { user: auth.username });
      else cb(refusal(535, '5.7.8 authentication failed'));
    },
    onRcptTo(address, _session, cb) {
      const r = options.rejectRcpt?.(address.address);
      if (r) cb(refusal(r.code, r.text));
      else cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const rcpt = session.envelope.rcptTo[0]?.address ?? '';
        const n = (counts.get(rcpt) ?? 0) + 1;
        counts.set(rcpt, n);
        const answer = options.respond?.(rcpt, n) ?? 250;
        const delay = options.delayMs?.(rcpt, n) ?? 0;
        simpleParser(raw).then(
          (parsed) => {
            received.push({ rcpt, answered: answer === 250 ? 250 : answer.code, parsed, raw });
            setTimeout(() => {
              if (answer === 250) cb();
              else cb(refusal(answer.code, answer.text));
            }, delay);
          },
          (e: Error) => cb(e),
        );
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    received,
    logins,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
