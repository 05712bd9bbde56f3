/**
 * SMS channel through Twilio's REST API: one `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`
 * per delivery, HTTP Basic auth (account sid : auth token), form fields `To` (the user's phone, E.164),
 * `Body` (see `smsText`) and `From` — or `MessagingServiceSid` when HERALD_TWILIO_FROM is a messaging
 * service (`MG…`), which is the field Twilio takes for one.
 *
 * The base URL is the operator's (trusted, like the account it names): requests go through one
 * kept-alive undici Agent, not through the egress-guarded client that user-supplied URLs use.
 *
 * Outcomes: 2xx sent, with Twilio's message `sid` and `status`, and the body's segment count
 * (computed here; Twilio's `num_segments` too when it reports one) as the delivery's detail.
 * 408, 429 (honouring Retry-After) and 5xx, timeouts and failures to connect are transient; so are
 * 401, 403 and 404, which say the account or the base URL is wrong: the operator's problem, not the
 * message's (as a refused SMTP login is), so a fix within the retry window still lets it out. Any
 * other answer is permanent, with Twilio's error `code` and `message` (21211 invalid 'To', 21610 the
 * recipient unsubscribed, …). A user without a phone is `skipped`.
 *
 * The auth token never appears in what this module returns: it is only ever in the Authorization
 * header, and is masked out of every error text as well.
 */
import { Agent, request } from 'undici';
import type { ChannelProvider, SendResult } from '../core/ports-channels.ts';
import type { DeliveryJob } from '../core/types.ts';
import { MASK } from '../redact.ts';
import { failure, parseObject, readCapped } from './provider-answers.ts';
import { retryAfter } from './retry-after.ts';
import { smsSegments } from './sms-segments.ts';
import { undiciBackstopMs } from './undici-backstop.ts';

export interface TwilioOptions {
  /** `AC…` (HERALD_TWILIO_ACCOUNT_SID). */
  accountSid: string;
  /** HERALD_TWILIO_AUTH_TOKEN. */
  authToken: string;
  /** An E.164 number or a messaging service sid `MG…` (HERALD_TWILIO_FROM). */
  from: string;
  /** Without a trailing slash; `https://api.twilio.com` (HERALD_TWILIO_BASE_URL). */
  baseUrl: string;
  /** Whole-request timeout, connecting included; within the worker's send budget. */
  timeoutMs: number;
  /** Kept-alive connections to Twilio; default 64. */
  connections?: number;
  /** Its name in routes, GET /v1/providers and metrics; default `twilio`. */
  name?: string;
}

/**
 * The SMS text of a delivery: the template's `sms.text` as rendered (the rendered title and body when
 * the template has none), else the notification's title and body, one per line.
 */
export function smsText(job: DeliveryJob): string {
  const rendered = job.content?.sms;
  if (rendered) return rendered.text ?? '';
  const n = job.content ?? job.notification;
  return [n.title, n.body].filter((s): s is string => !!s).join('\n');
}

/** Answers worth retrying: overload and timeouts, and those that blame the account, not the message. */
const TRANSIENT_STATUS = new Set([401, 403, 404, 408, 429]);

export class TwilioProvider implements ChannelProvider {
  readonly channel = 'sms' as const;
  readonly name: string;
  private readonly agent: Agent;
  private readonly url: string;
  private readonly authorization: string;
  private readonly fromField: [string, string];

  constructor(private readonly options: TwilioOptions) {
    this.name = options.name ?? 'twilio';
    this.agent = new Agent({
      connections: options.connections ?? 64,
      connect: { timeout: options.timeoutMs },
      headersTimeout: undiciBackstopMs(options.timeoutMs),
      bodyTimeout: undiciBackstopMs(options.timeoutMs),
    });
    this.url = `${options.baseUrl.replace(/\/+$/, '')}/2010-04-01/Accounts/${encodeURIComponent(options.accountSid)}/Messages.json`;
    this.authorization = `Basic ${Buffer.from(`${options.accountSid}:${options.authToken}`).toString('base64')}`;
    this.fromField = options.from.startsWith('MG') ? ['MessagingServiceSid', options.from] : ['From', options.from];
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    const to = job.user?.phone;
    if (!to) return { ok: false, skipped: `user ${job.userId} has no phone` };
    const text = smsText(job);
    if (!text) return { ok: false, skipped: 'the notification has no title or body to send as SMS' };
    const form = new URLSearchParams([['To', to], this.fromField, ['Body', text]]).toString();

    let status: number;
    let headers: Record<string, string | string[] | undefined>;
    let answer: string;
    try {
      const res = await request(this.url, {
        method: 'POST',
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.options.timeoutMs),
        headers: {
          authorization: this.authorization,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          'user-agent': 'Herald-SMS/1',
        },
        body: form,
      });
      status = res.statusCode;
      headers = res.headers;
      answer = await readCapped(res.body);
    } catch (e) {
      return { ok: false, permanent: false, error: this.hide(`request to Twilio failed: ${failure(e)}`) };
    }

    const json = parseObject(answer);
    if (status >= 200 && status < 300) {
      const seg = smsSegments(text);
      const numSegments = Number(json?.num_segments);
      return {
        ok: true,
        detail: {
          provider: 'twilio',
          sid: typeof json?.sid === 'string' ? json.sid : null,
          status: typeof json?.status === 'string' ? json.status : null,
          segments: seg.segments,
          encoding: seg.encoding,
          ...(json?.num_segments != null && Number.isInteger(numSegments) ? { numSegments } : {}),
        },
      };
    }
    const error = this.hide(twilioError(status, json));
    if (TRANSIENT_STATUS.has(status) || status >= 500) {
      return { ok: false, permanent: false, error, ...retryAfter(headers['retry-after']) };
    }
    return { ok: false, permanent: true, error };
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  /** Masks the auth token out of a text, wherever a server or a library might have echoed it. */
  private hide(text: string): string {
    const token = this.options.authToken;
    return token.length >= 4 ? text.split(token).join(MASK) : text;
  }
}

/** `Twilio answered HTTP 400: error 21211: The 'To' number … is not a valid phone number.` */
function twilioError(status: number, json: Record<string, unknown> | null): string {
  const code = json?.code;
  const message = typeof json?.message === 'string' ? json.message : null;
  const parts = [`Twilio answered HTTP ${status}`];
  if (typeof code === 'number' || typeof code === 'string') parts.push(`error ${code}`);
  if (message) parts.push(message.slice(0, 500));
  return parts.join(': ');
}
