/**
 * Dispatch: what happens to a leased delivery between the take and its provider. In order:
 *
 * 1. Gates (SendGate), each of which may end the delivery without sending it, with the reason
 *    (`skipped`: opted out, `unless: read` already read, …). A gate that throws fails the attempt
 *    transiently, like a provider that throws.
 * 2. Rendering (ContentRenderer): the delivery's content for its user and channel.
 * 3. The channel's route: its providers, in fallback order (src/core/provider-route.ts).
 *
 * `in_app` has no route: its send is the inbox write, which the store makes when the worker records
 * the outcome (DeliveryStore.completeInApp). Only in-app deliveries of categories with a template get
 * here (the others are completed in SQL as they are taken); the result carries their rendered text
 * (`inbox`). A template that failed to render leaves the notification's own text (ContentRenderer);
 * with no text of its own either, the delivery fails permanently.
 *
 * Gates, renderer and routes are given by src/wiring.ts; the core knows none of their adapters.
 */
import type { SendResult } from './ports-channels.ts';
import type { Channel, DeliveryJob, JsonValue } from './types.ts';

/** Decides, before a delivery is sent, whether it is still to be sent. */
export interface SendGate {
  readonly name: string;
  /** null: go on. A result: the delivery ends with it, unsent (usually `{ ok: false, skipped: reason }`). */
  check(job: DeliveryJob): Promise<SendResult | null>;
}

/** Fills in what a delivery says, for its user and channel (templates); returns the job to send. */
export interface ContentRenderer {
  render(job: DeliveryJob): Promise<DeliveryJob>;
}

/** Sends on one channel: one provider, or several in fallback order. */
export interface ChannelRoute {
  send(job: DeliveryJob): Promise<SendResult>;
}

/** What the worker calls for each leased delivery. */
export interface Dispatch {
  send(job: DeliveryJob): Promise<SendResult>;
}

export class Dispatcher implements Dispatch {
  constructor(
    private readonly routes: ReadonlyMap<Channel, ChannelRoute>,
    private readonly gates: readonly SendGate[] = [],
    private readonly renderer: ContentRenderer | null = null,
  ) {}

  async send(job: DeliveryJob): Promise<SendResult> {
    const route = this.routes.get(job.channel);
    if (!route && job.channel !== 'in_app') {
      return { ok: false, skipped: `no provider is configured for channel ${job.channel}`, reason: 'no_provider' };
    }
    for (const gate of this.gates) {
      const verdict = await gate.check(job);
      if (verdict) return verdict;
    }
    const rendered = this.renderer ? await this.renderer.render(job) : job;
    const content = rendered.content;
    const templateError = content?.templateError;
    if (templateError !== undefined && content?.title == null && content?.body == null) {
      return { ok: false, permanent: true, error: `template error: ${templateError}` };
    }
    if (!route) {
      // in_app: the text to append to the inbox (null: the notification's own).
      const inbox = content ? { title: content.title, body: content.body } : { title: null, body: null };
      return { ok: true, inbox, ...(templateError !== undefined && { detail: { templateError } }) };
    }
    const result = await route.send(rendered);
    return templateError !== undefined && result.ok
      ? { ...result, detail: withError(result.detail, templateError) }
      : result;
  }
}

/** A sent delivery's detail, with the template error its text fell back for. */
function withError(detail: JsonValue | undefined, templateError: string): JsonValue {
  return detail && typeof detail === 'object' && !Array.isArray(detail)
    ? { ...detail, templateError }
    : { templateError };
}
