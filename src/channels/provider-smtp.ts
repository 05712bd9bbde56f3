/**
 * Email channel: one message per delivery to the user's `email`, over a pooled SMTP connection
 * (HERALD_SMTP_URL; `smtps://` speaks TLS from the first byte, `smtp://` upgrades with STARTTLS when
 * the server offers it). From is HERALD_EMAIL_FROM; the subject is the title; the message has a text
 * and an HTML part (the body HTML-escaped). All of it is built by `emailContent`: from the delivery's
 * rendered content when its category has a template (`email.subject`, `email.html`, `email.text`),
 * else from the notification's own title and body.
 *
 * Guarantees:
 * - `Message-ID` is `<deliveryId@from-domain>`: the same on every attempt (and after a crash), so a
 *   mailbox that de-duplicates by it shows the message once even if an attempt that timed out on
 *   Herald's side was in fact accepted. `X-Herald-Notification-Id` and `X-Herald-Delivery-Id` name
 *   what the message is.
 * - With `listUnsubscribe` (HERALD_PUBLIC_URL set) and a link for the delivery (its category is not
 *   required), the message carries `List-Unsubscribe: <link>` and `List-Unsubscribe-Post:
 *   List-Unsubscribe=One-Click` (RFC 2369, RFC 8058). DKIM-signing them, as RFC 8058 asks, is the
 *   relay's job.
 * - One send takes at most `timeoutMs`, waiting for a pooled connection included; connecting, the
 *   greeting and every reply are each bounded by it too, so nothing outlives the worker's budget.
 * - The SMTP password never appears in what a send reports (`lastError`, detail): error text from the
 *   connection or the server is redacted (src/redact.ts). This module logs nothing.
 *
 * Outcomes: 2xx (250) sent, with the server's reply and the Message-ID as detail; a 4xx reply, a
 * refused or broken connection, a timeout and a rejected login are transient (a login is the
 * operator's to fix, not the message's); any other 5xx reply (550 mailbox unknown, 553, 554) and an
 * address the client cannot use are permanent. A user without `email` is `skipped`.
 *
 * Cost: the message is composed into one buffer before it is handed to the pooled connection,
 * which then writes it in one piece. Composed while it is sent, nodemailer wrote every piece of the
 * MIME tree (headers, boundaries, each part) to the socket as it came: a dozen writes per message,
 * each a system call that costs 60–70 µs on a shared VM. A pooled connection is kept for up to
 * `MESSAGES_PER_CONNECTION` messages (nodemailer's default, 100, meant a new connection, greeting
 * and login every 100 messages).
 *
 * Not done here: several servers with fallback (a route of several providers does that).
 */
import nodemailer, { type SendMailOptions, type Transporter } from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { ChannelProvider, SendResult } from '../core/ports-channels.ts';
import type { DeliveryJob } from '../core/types.ts';
import { redact } from '../redact.ts';

export interface SmtpOptions {
  /** `smtp://user:pass@host:port` or `smtps://…` (HERALD_SMTP_URL); port defaults to 587, or 465 with smtps. */
  url: string;
  /** The From of every message, `addr` or `Name <addr>` (HERALD_EMAIL_FROM). */
  from: string;
  /** Bound on one send, and on connecting, the greeting and each reply (HERALD_SMTP_TIMEOUT_MS). */
  timeoutMs: number;
  /** Pooled connections to the server (HERALD_SMTP_MAX_CONNECTIONS); default 8. */
  maxConnections?: number;
  /** Its name in routes, GET /v1/providers and metrics; default `smtp`. */
  name?: string;
  /** The one-click unsubscribe link of a delivery, or null for none (src/core/unsubscribe-links.ts). */
  listUnsubscribe?: ((job: DeliveryJob) => Promise<string | null>) | undefined;
}

/** What a message says. */
export interface EmailContent {
  subject: string;
  text: string;
  html: string;
}

/**
 * From a template (the delivery's `content.email`): subject, text and HTML as rendered (the HTML in a
 * document skeleton unless it is a whole document). Otherwise: subject = the title (the category
 * when there is none); text and HTML = title and body (the rendered ones after a template error).
 */
export function emailContent(job: DeliveryJob): EmailContent {
  const { category } = job.notification;
  const rendered = job.content?.email;
  if (rendered) {
    const title = job.content?.title ?? null;
    const subject = (rendered.subject || title || category).replace(/[\r\n]+/g, ' ').trim();
    const html = rendered.html ?? '';
    return {
      subject,
      text: rendered.text ?? '',
      html: /^\s*(<!doctype|<html)/i.test(html)
        ? html
        : ['<!doctype html>', '<html><head><meta charset="utf-8"></head><body>', html, '</body></html>'].join('\n'),
    };
  }
  const { title, body } = job.content ?? job.notification;
  const subject = (title ?? category).replace(/[\r\n]+/g, ' ').trim();
  const text = [title, body].filter((s): s is string => !!s).join('\n\n');
  const paragraphs = (body ?? '')
    .split(/\r?\n\s*\r?\n/)
    .filter((p) => p.trim() !== '')
    .map((p) => `<p>${escapeHtml(p).replace(/\r?\n/g, '<br>\n')}</p>`);
  const html = [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"></head><body>',
    ...(title ? [`<h1>${escapeHtml(title)}</h1>`] : []),
    ...paragraphs,
    '</body></html>',
  ].join('\n');
  return { subject, text, html };
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `<deliveryId@domain of From>`: stable for the delivery. */
export function messageIdFor(deliveryId: string, from: string): string {
  return `<${deliveryId}@${fromDomain(from)}>`;
}

function fromDomain(from: string): string {
  const first = addressparser(from)[0];
  const address = (first && 'address' in first ? first.address : '') ?? '';
  const at = address.lastIndexOf('@');
  return at >= 0 ? address.slice(at + 1) : 'herald';
}

/** The whole message for one delivery to `to`; with `unsubscribeUrl`, the RFC 8058 headers. */
export function buildEmail(
  job: DeliveryJob,
  from: string,
  to: string,
  content: EmailContent = emailContent(job),
  unsubscribeUrl: string | null = null,
): SendMailOptions {
  const unsubscribe = unsubscribeUrl
    ? { 'List-Unsubscribe': `<${unsubscribeUrl}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' }
    : {};
  return {
    from,
    to,
    subject: content.subject,
    text: content.text,
    html: content.html,
    messageId: messageIdFor(job.deliveryId, from),
    headers: {
      'X-Herald-Notification-Id': job.notification.id,
      'X-Herald-Delivery-Id': job.deliveryId,
      ...unsubscribe,
    },
  };
}

/** What nodemailer's errors carry (smtp-connection's `_formatError`). */
interface SmtpError {
  message?: string;
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
}

/** Client-side refusals of an address (no reply from the server): retrying cannot help. */
const PERMANENT_CLIENT_CODES = new Set(['EENVELOPE', 'EMESSAGE']);

/** Transient or permanent, with an error text whose secrets are hidden. */
export function classifySmtpError(e: unknown, secrets: readonly string[]): SendResult {
  const err = (e ?? {}) as SmtpError;
  const said = err.response ? `SMTP server answered ${err.response}` : `SMTP ${err.message ?? String(e)}`;
  const where = err.command ? ` (${err.command})` : '';
  const error = redact(`${said}${where}`, { secrets });
  if (err.code === 'EAUTH') return { ok: false, permanent: false, error: `login refused: ${error}` };
  const code = err.responseCode;
  if (code !== undefined && code >= 400 && code < 500) return { ok: false, permanent: false, error };
  if (code !== undefined && code >= 500) return { ok: false, permanent: true, error };
  if (err.code && PERMANENT_CLIENT_CODES.has(err.code) && !err.response) return { ok: false, permanent: true, error };
  return { ok: false, permanent: false, error };
}

/** Messages sent over one pooled connection before it is replaced by a new one. */
export const MESSAGES_PER_CONNECTION = 1000;

/** The address of `Name <addr>` (or `addr`), for the envelope's MAIL FROM. */
function addressOf(mailbox: string): string {
  const first = addressparser(mailbox)[0];
  return (first && 'address' in first ? first.address : '') || mailbox;
}

/** The whole message as it goes on the wire (headers and body). */
function compose(message: SendMailOptions): Promise<Buffer> {
  return new MailComposer(message).compile().build();
}

export class SmtpProvider implements ChannelProvider {
  readonly channel = 'email' as const;
  readonly name: string;
  private readonly transport: Transporter;
  /** The password as written and decoded: hidden from every error text. */
  private readonly secrets: string[];
  private readonly envelopeFrom: string;

  constructor(private readonly options: SmtpOptions) {
    this.name = options.name ?? 'smtp';
    const u = new URL(options.url);
    const secure = u.protocol === 'smtps:';
    const user = decodeURIComponent(u.username);
    const pass = decodeURIComponent(u.password);
    this.secrets = [u.password, pass].filter(Boolean);
    this.envelopeFrom = addressOf(options.from);
    this.transport = nodemailer.createTransport({
      pool: true,
      maxConnections: options.maxConnections ?? 8,
      maxMessages: MESSAGES_PER_CONNECTION,
      host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: u.port ? Number(u.port) : secure ? 465 : 587,
      secure,
      ...(user ? { auth: { user, pass } } : {}),
      connectionTimeout: options.timeoutMs,
      greetingTimeout: options.timeoutMs,
      socketTimeout: options.timeoutMs,
      dnsTimeout: options.timeoutMs,
      logger: false,
      debug: false,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    const to = job.user?.email;
    if (!to) return { ok: false, skipped: `user ${job.userId} has no email` };
    const unsubscribeUrl = (await this.options.listUnsubscribe?.(job)) ?? null;
    const message = buildEmail(job, this.options.from, to, emailContent(job), unsubscribeUrl);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.timeoutMs);
    });
    try {
      const raw = await compose(message);
      const sent = this.transport.sendMail({
        raw,
        envelope: { from: this.envelopeFrom, to: [to] },
        messageId: message.messageId,
      });
      const info = await Promise.race([sent, timedOut]);
      if (info === 'timeout') {
        return { ok: false, permanent: false, error: `SMTP send timed out after ${this.options.timeoutMs} ms` };
      }
      const response = redact(String(info.response ?? ''), { secrets: this.secrets });
      return { ok: true, detail: { messageId: String(info.messageId ?? message.messageId), response } };
    } catch (e) {
      return classifySmtpError(e, this.secrets);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.transport.close();
  }
}
