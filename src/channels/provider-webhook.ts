/**
 * Webhook channel: POSTs the notification as JSON to the user's `webhookUrl`, signed as Standard
 * Webhooks do. `webhook-id` is the delivery id, the same on every attempt (and after a crash), so a
 * receiver that de-duplicates by it sees each notification once. The body is the same bytes on
 * every attempt too; only `webhook-timestamp` and the signature change.
 *
 * Outcomes: 2xx sent; 408, 429 (honouring Retry-After) and 5xx, timeouts and network errors are
 * transient; any other answer (including redirects, which are not followed) is permanent.
 */
import { Agent, request } from 'undici';
import type { ChannelProvider, SendResult } from '../core/ports.ts';
import type { DeliveryJob } from '../core/types.ts';
import { signWebhook, webhookKey } from './webhook-signature.ts';

export interface WebhookOptions {
  /** `whsec_…` (HERALD_WEBHOOK_SECRET). */
  secret: string;
  /** Whole-request timeout (HERALD_WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
  /** Kept-alive connections per receiver origin; default 128. */
  connectionsPerOrigin?: number;
}

export function webhookBody(job: DeliveryJob): string {
  const n = job.notification;
  return JSON.stringify({
    type: 'notification',
    id: n.id,
    deliveryId: job.deliveryId,
    userId: job.userId,
    category: n.category,
    priority: n.priority,
    title: n.title,
    body: n.body,
    data: n.data,
    groupKey: n.groupKey,
    createdAt: n.createdAt.toISOString(),
  });
}

export class WebhookProvider implements ChannelProvider {
  readonly channel = 'webhook' as const;
  readonly name = 'webhook';
  private readonly key: Buffer;
  private readonly agent: Agent;

  constructor(private readonly options: WebhookOptions) {
    this.key = webhookKey(options.secret);
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 128,
      keepAliveTimeout: 30_000,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    const url = job.user?.webhookUrl;
    if (!url) return { ok: false, skipped: `user ${job.userId} has no webhookUrl` };
    const body = webhookBody(job);
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const res = await request(url, {
        method: 'POST',
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.options.timeoutMs),
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
      await res.body.dump();
      const s = res.statusCode;
      if (s >= 200 && s < 300) return { ok: true, detail: { status: s } };
      const error = `receiver answered HTTP ${s}`;
      if (s === 408 || s === 429 || s >= 500) {
        return { ok: false, permanent: false, error, ...retryAfter(res.headers['retry-after']) };
      }
      return { ok: false, permanent: true, error };
    } catch (e) {
      const err = e as Error & { code?: string };
      const why =
        err.name === 'TimeoutError' ? `timed out after ${this.options.timeoutMs} ms` : (err.code ?? err.message);
      return { ok: false, permanent: false, error: `request failed: ${why}` };
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

function retryAfter(h: string | string[] | undefined): { retryAfterMs?: number } {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return {};
  const secs = Number(v);
  if (Number.isFinite(secs)) return { retryAfterMs: Math.max(0, secs * 1000) };
  const at = Date.parse(v);
  return Number.isNaN(at) ? {} : { retryAfterMs: Math.max(0, at - Date.now()) };
}
