/**
 * In-app channel: writes the notification into the user's inbox, where it gets the next per-user
 * seq, and hands the entries to the real-time gateway. Exactly once per delivery: the inbox entry
 * is keyed by delivery id, so a redelivered job returns the entry it already has.
 */
import type { BatchChannelProvider, InboxListener, InboxStore, SendResult } from '../core/ports.ts';
import type { DeliveryJob } from '../core/types.ts';

export class InAppProvider implements BatchChannelProvider {
  readonly channel = 'in_app' as const;
  readonly name = 'inbox';
  private readonly listeners = new Set<InboxListener>();

  constructor(private readonly inbox: InboxStore) {}

  /** The gateway subscribes here to push new entries to open sockets. */
  subscribe(listener: InboxListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    const [r] = await this.sendBatch([job]);
    return r as SendResult;
  }

  async sendBatch(jobs: readonly DeliveryJob[]): Promise<SendResult[]> {
    const entries = await this.inbox.appendInbox(jobs);
    for (const l of this.listeners) l.onInboxEntries(entries);
    return entries.map((e) => ({ ok: true, detail: { seq: e.item.seq } }));
  }
}
