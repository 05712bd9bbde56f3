/**
 * The provider table: one line per provider, tagged by channel. Adding a provider is one new file
 * and one line here. Deliveries on a channel without a provider are `skipped`, with the reason.
 * `in_app` has none: its send is the inbox write, which the store makes as it starts the delivery.
 */
import type { ChannelProvider } from '../core/ports.ts';
import type { Channel } from '../core/types.ts';
import type { EgressPolicy } from './egress-policy.ts';
import { WebhookProvider } from './provider-webhook.ts';

export interface ProviderDeps {
  webhookSecret: string;
  webhookTimeoutMs: number;
  /** Where user-supplied URLs may lead (HERALD_EGRESS_ALLOW); every provider that sends to one uses it. */
  egress: EgressPolicy;
}

const PROVIDERS: Partial<Record<Channel, (deps: ProviderDeps) => ChannelProvider & { close?(): Promise<void> }>> = {
  webhook: (d) => new WebhookProvider({ secret: d.webhookSecret, timeoutMs: d.webhookTimeoutMs, egress: d.egress }),
};

export function buildProviders(deps: ProviderDeps): Map<Channel, ChannelProvider & { close?(): Promise<void> }> {
  const out = new Map<Channel, ChannelProvider & { close?(): Promise<void> }>();
  for (const [channel, make] of Object.entries(PROVIDERS)) {
    if (make) out.set(channel as Channel, make(deps));
  }
  return out;
}
