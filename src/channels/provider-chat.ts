/**
 * Chat channel: a Slack-compatible incoming webhook. One `POST` of `{"text", "blocks"}` (JSON) per
 * delivery to the user's `chatWebhookUrl`; `text` is the title and the body (Slack shows it in
 * notifications and where blocks cannot be shown), `blocks` a header with the title and a section
 * with the body. Slack's mrkdwn control characters `&`, `<` and `>` in what the producer wrote are
 * escaped (`&amp;`, `&lt;`, `&gt;`), so a title cannot ping `<!channel>` or forge a link. The header
 * is `plain_text`, which Slack does not parse, so it is sent as written (cut to Slack's 150
 * characters); the body section is cut to Slack's 3 000.
 *
 * The URL is read by the user's id when sending (`users.getUser`), not by the take statement: the
 * hot take statement stays as it is, and an attempt uses the URL stored at that moment. Requests go
 * through the guarded HTTP client (egress-http.ts): a destination that is not public and not in
 * HERALD_EGRESS_ALLOW is never connected to.
 *
 * Outcomes: 2xx sent. 408, 429 (honouring Retry-After) and 5xx, timeouts and failures to connect are
 * transient, and so is a failure to read the user's profile. Any other answer is permanent, with the
 * text the receiver answered (Slack: 400 `invalid_payload`, 403 `action_prohibited`, 404
 * `no_service`, 410 `channel_is_archived`, …); so are a refused destination and a redirect (not
 * followed). A user without a `chatWebhookUrl`, or a notification with neither title nor body, is
 * `skipped`. Nothing is retried here: retries are the worker's, and a retry sends the same JSON.
 */

import type { UserStore } from '../core/ports.ts';
import type { ChannelProvider, SendResult } from '../core/ports-channels.ts';
import { joinTitleBody } from '../core/template-render.ts';
import type { DeliveryJob } from '../core/types.ts';
import { GuardedHttpClient, sendResultOf } from './egress-http.ts';
import type { EgressPolicy } from './egress-policy.ts';

export interface ChatOptions {
  /** Whole-request timeout, connecting included (the worker's send budget, HERALD_WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  /** Which destinations may be reached (HERALD_EGRESS_ALLOW). */
  egress: EgressPolicy;
  /** Where the user's `chatWebhookUrl` is read. */
  users: Pick<UserStore, 'getUser'>;
  /** Kept-alive connections per receiver origin; default 64. */
  connectionsPerOrigin?: number;
}

/** Slack's limits: a header's text, a section's text. */
const HEADER_MAX = 150;
const SECTION_MAX = 3000;
/** Characters of the receiver's answer kept in an error. */
const ANSWER_SHOWN = 200;

/** Slack mrkdwn: `&`, `<` and `>` are control characters; everything else is left as written. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The escaped text, cut (with `…`) so that the escaped form is at most `max` characters. */
function escapedWithin(text: string, max: number): string {
  const escaped = escapeMrkdwn(text);
  if (escaped.length <= max) return escaped;
  let out = '';
  for (const ch of text) {
    const e = escapeMrkdwn(ch);
    if (out.length + e.length > max - 1) break;
    out += e;
  }
  return `${out}…`;
}

function within(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

export interface ChatMessage {
  text: string;
  blocks: Record<string, unknown>[];
}

/**
 * The message for a delivery; null when it has nothing to show (no title and no body). With a
 * template whose `chat.text` rendered something other than its title and body: that text, as
 * `text` and as the one section of `blocks` (Slack shows blocks rather than text). Otherwise the
 * (rendered) title as a header and body as a section.
 */
export function chatMessage(job: DeliveryJob): ChatMessage | null {
  const content = job.content;
  const own = content?.chat?.text;
  if (content && own != null && own !== joinTitleBody(content.title, content.body)) {
    if (!own) return null;
    return {
      text: escapeMrkdwn(own),
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: escapedWithin(own, SECTION_MAX) } }],
    };
  }
  const { title, body } = content ?? job.notification;
  if (!title && !body) return null;
  const blocks: Record<string, unknown>[] = [];
  if (title) blocks.push({ type: 'header', text: { type: 'plain_text', text: within(title, HEADER_MAX) } });
  if (body) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: escapedWithin(body, SECTION_MAX) } });
  const text = [title, body]
    .filter((s): s is string => !!s)
    .map(escapeMrkdwn)
    .join('\n');
  return { text, blocks };
}

export class ChatProvider implements ChannelProvider {
  readonly channel = 'chat' as const;
  readonly name = 'chat';
  private readonly http: GuardedHttpClient;

  constructor(private readonly options: ChatOptions) {
    this.http = new GuardedHttpClient({
      policy: options.egress,
      connectionsPerOrigin: options.connectionsPerOrigin ?? 64,
      connectTimeoutMs: options.timeoutMs,
    });
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    let url: string | null | undefined;
    try {
      url = await this.urlOf(job);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return { ok: false, permanent: false, error: `could not read the chatWebhookUrl of user ${job.userId}: ${why}` };
    }
    if (!url) return { ok: false, skipped: `user ${job.userId} has no chatWebhookUrl` };
    const message = chatMessage(job);
    if (!message) return { ok: false, skipped: 'the notification has no title or body to send to chat' };

    const res = await this.http.post(url, {
      timeoutMs: this.options.timeoutMs,
      headers: { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Herald-Chat/1' },
      body: JSON.stringify(message),
    });
    return sendResultOf(res, { urlField: 'chatWebhookUrl', detail: { provider: this.name }, said: answerText });
  }

  close(): Promise<void> {
    return this.http.close();
  }

  /** The job's own value when its user carries one; otherwise the stored profile's. */
  private async urlOf(job: DeliveryJob): Promise<string | null | undefined> {
    if (job.user === null) return null;
    if (job.user.chatWebhookUrl !== undefined) return job.user.chatWebhookUrl;
    return (await this.options.users.getUser(job.userId))?.chatWebhookUrl;
  }
}

/** Slack answers a short text (`no_service`); shown on one line, cut, without control characters. */
function answerText(body: string): string {
  const line = body.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return line.length > ANSWER_SHOWN ? `${line.slice(0, ANSWER_SHOWN)}…` : line;
}
