/**
 * Webhook channel: POSTs the notification as JSON to the user's `webhookUrl`, signed as Standard
 * Webhooks do. `webhook-id` is the delivery id, the same on every attempt (and after a crash), so a
 * receiver that de-duplicates by it sees each notification once. The body is the same bytes on
 * every attempt too (its `title`/`body` rendered from the category's template, if it has one, unless
 * that template changed between attempts); only `webhook-timestamp` and the signature change.
 *
 * Requests go through the guarded HTTP client (egress-http.ts): a destination that is not public
 * and not in HERALD_EGRESS_ALLOW is never connected to.
 *
 * Outcomes: 2xx sent; 408, 429 (honouring Retry-After) and 5xx, timeouts and failures to connect
 * are transient; a refused destination and any other answer (including redirects, which are not
 * followed) are permanent.
 */
import type { ChannelProvider, SendResult } from '../core/ports-channels.ts';
import type { DeliveryJob } from '../core/types.ts';
import { GuardedHttpClient, sendResultOf } from './egress-http.ts';
import type { EgressPolicy } from './egress-policy.ts';
import { signWebhook, webhookKey } from './webhook-signature.ts';

export interface WebhookOptions {
  /** `whsec_…` (HERALD_WEBHOOK_SECRET). */
  secret: string;
  /** Whole-request timeout, connecting included (HERALD_WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  /** Which destinations may be reached (HERALD_EGRESS_ALLOW). */
  egress: EgressPolicy;
  /** Kept-alive connections per receiver origin; default 128. */
  connectionsPerOrigin?: number;
}

/** The notification JSON; `title` and `body` are the rendered ones when the category has a template. */
export function webhookBody(job: DeliveryJob): string {
  const n = job.notification;
  const text = job.content ?? n;
  return JSON.stringify({
    type: 'notification',
    id: n.id,
    deliveryId: job.deliveryId,
    userId: job.userId,
    category: n.category,
    priority: n.priority,
    title: text.title,
    body: text.body,
    data: n.data,
    groupKey: n.groupKey,
    createdAt: n.createdAt.toISOString(),
  });
}

export class WebhookProvider implements ChannelProvider {
  readonly channel = 'webhook' as const;
  readonly name = 'webhook';
  private readonly key: Buffer;
  private readonly http: GuardedHttpClient;

  constructor(private readonly options: WebhookOptions) {
    this.key = webhookKey(options.secret);
    this.http = new GuardedHttpClient({
      policy: options.egress,
      connectionsPerOrigin: options.connectionsPerOrigin ?? 128,
      connectTimeoutMs: options.timeoutMs,
    });
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    const url = job.user?.webhookUrl;
    if (!url) return { ok: false, skipped: `user ${job.userId} has no webhookUrl` };
    const body = webhookBody(job);
    const timestamp = Math.floor(Date.now() / 1000);
    const res = await this.http.post(url, {
      timeoutMs: this.options.timeoutMs,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Herald-Webhooks/1',
        'webhook-id': job.deliveryId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signWebhook(this.key, job.deliveryId, timestamp, body),
        'herald-attempt': String(job.attempt),
      },
      body,
    });
    return sendResultOf(res, { urlField: 'webhookUrl' });
  }

  close(): Promise<void> {
    return this.http.close();
  }
}
