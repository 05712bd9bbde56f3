/**
 * The provider table: one line per provider, tagged by channel. Adding a provider is one new file
 * and one line here. Channels without a provider fail their deliveries permanently, with a reason.
 */
import type { ChannelProvider, InboxStore } from '../core/ports.ts';
import type { Channel } from '../core/types.ts';
import { InAppProvider } from './provider-in-app.ts';
import { WebhookProvider } from './provider-webhook.ts';

export interface ProviderDeps {
  inbox: InboxStore;
  webhookSecret: string;
  webhookTimeoutMs: number;
}

const PROVIDERS: Partial<Record<Channel, (deps: ProviderDeps) => ChannelProvider & { close?(): Promise<void> }>> = {
  in_app: (d) => new InAppProvider(d.inbox),
  webhook: (d) => new WebhookProvider({ secret: d.webhookSecret, timeoutMs: d.webhookTimeoutMs }),
};

export function buildProviders(deps: ProviderDeps): Map<Channel, ChannelProvider & { close?(): Promise<void> }> {
  const out = new Map<Channel, ChannelProvider & { close?(): Promise<void> }>();
  for (const [channel, make] of Object.entries(PROVIDERS)) {
    if (make) out.set(channel as Channel, make(deps));
  }
  return out;
}
