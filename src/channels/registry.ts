/**
 * The provider table: one line per provider, tagged by channel. Adding a provider is one new file
 * and one line here. Deliveries on a channel without a provider are `skipped`, with the reason.
 * `in_app` has none: its send is the inbox write, which the store makes as it starts the delivery.
 */
import type { ChannelProvider, UserStore } from '../core/ports.ts';
import type { Channel } from '../core/types.ts';
import type { EgressPolicy } from './egress-policy.ts';
import { ChatProvider } from './provider-chat.ts';
import { SmtpProvider } from './provider-smtp.ts';
import { type TwilioOptions, TwilioProvider } from './provider-twilio.ts';
import { WebhookProvider } from './provider-webhook.ts';

export interface ProviderDeps {
  webhookSecret: string;
  webhookTimeoutMs: number;
  /** Where user-supplied URLs may lead (HERALD_EGRESS_ALLOW); every provider that sends to one uses it. */
  egress: EgressPolicy;
  /** Email over SMTP (HERALD_SMTP_URL and the settings beside it); undefined: no email provider. */
  smtp?: { url: string; from: string; timeoutMs: number; maxConnections: number } | undefined;
  /** SMS through Twilio; undefined: not configured, so no SMS provider. */
  twilio?: TwilioOptions | undefined;
  /** Profiles, for contact points the take statement does not read (the chat provider's chatWebhookUrl). */
  users: Pick<UserStore, 'getUser'>;
}

/** A factory returns undefined when its provider is not configured. */
const PROVIDERS: Partial<
  Record<Channel, (deps: ProviderDeps) => (ChannelProvider & { close?(): Promise<void> }) | undefined>
> = {
  webhook: (d) => new WebhookProvider({ secret: d.webhookSecret, timeoutMs: d.webhookTimeoutMs, egress: d.egress }),
  email: (d) => (d.smtp ? new SmtpProvider(d.smtp) : undefined),
  sms: (d) => (d.twilio ? new TwilioProvider(d.twilio) : undefined),
  chat: (d) => new ChatProvider({ timeoutMs: d.webhookTimeoutMs, egress: d.egress, users: d.users }),
};

export function buildProviders(deps: ProviderDeps): Map<Channel, ChannelProvider & { close?(): Promise<void> }> {
  const out = new Map<Channel, ChannelProvider & { close?(): Promise<void> }>();
  for (const [channel, make] of Object.entries(PROVIDERS)) {
    const provider = make?.(deps);
    if (provider) out.set(channel as Channel, provider);
  }
  return out;
}
