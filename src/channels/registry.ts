/**
 * The provider table: one line per provider, tagged by channel. Adding a provider is one new file
 * and one line here. Deliveries on a channel without a provider are `skipped`, with the reason.
 * `in_app` has none: its send is the inbox write, which the store makes as it starts the delivery.
 */
import type { DeviceProvider } from '../core/devices.ts';
import type { ChannelProvider, DeviceStore, UserStore } from '../core/ports.ts';
import type { Channel } from '../core/types.ts';
import { GuardedHttpClient } from './egress-http.ts';
import type { EgressPolicy } from './egress-policy.ts';
import { ChatProvider } from './provider-chat.ts';
import { PushProvider } from './provider-push.ts';
import { SmtpProvider } from './provider-smtp.ts';
import { type TwilioOptions, TwilioProvider } from './provider-twilio.ts';
import { WebhookProvider } from './provider-webhook.ts';
import { type ApnsOptions, createApnsSender } from './push-apns.ts';
import { createFcmSender, type FcmOptions } from './push-fcm.ts';
import type { PushSender } from './push-sender.ts';
import { type VapidKeys, WebPushSender } from './push-webpush.ts';

export interface ProviderDeps {
  webhookSecret: string;
  webhookTimeoutMs: number;
  /** Where user-supplied URLs may lead (HERALD_EGRESS_ALLOW); every provider that sends to one uses it. */
  egress: EgressPolicy;
  /** Email over SMTP (HERALD_SMTP_URL and the settings beside it); undefined: no email provider. */
  smtp?: { url: string; from: string; timeoutMs: number; maxConnections: number } | undefined;
  /** SMS through Twilio; undefined: not configured, so no SMS provider. */
  twilio?: TwilioOptions | undefined;
  /** Where the `push` channel reads and prunes a user's devices. */
  devices?: Pick<DeviceStore, 'listDevices' | 'removeDevice' | 'touchDevices'> | undefined;
  /** Web Push with VAPID (requests bounded by `timeoutMs`); undefined: no Web Push sender. */
  webpush?: { vapid: VapidKeys; timeoutMs: number } | undefined;
  /** FCM HTTP v1 (HERALD_FCM_SERVICE_ACCOUNT); undefined: no FCM sender. */
  fcm?: FcmOptions | undefined;
  /** APNs token auth (HERALD_APNS_*); undefined: no APNs sender. */
  apns?: ApnsOptions | undefined;
  /** Profiles, for contact points the take statement does not read (the chat provider's chatWebhookUrl). */
  users: Pick<UserStore, 'getUser'>;
}

/** The push senders configured, by device provider. */
function pushSenders(d: ProviderDeps): Map<DeviceProvider, PushSender> {
  const senders = new Map<DeviceProvider, PushSender>();
  if (d.webpush) {
    const http = new GuardedHttpClient({ policy: d.egress });
    senders.set('webpush', new WebPushSender({ vapid: d.webpush.vapid, http, timeoutMs: d.webpush.timeoutMs }));
  }
  const fcm = createFcmSender(d.fcm);
  if (fcm) senders.set('fcm', fcm);
  const apns = createApnsSender(d.apns);
  if (apns) senders.set('apns', apns);
  return senders;
}

/** A factory returns undefined when its provider is not configured. */
const PROVIDERS: Partial<
  Record<Channel, (deps: ProviderDeps) => (ChannelProvider & { close?(): Promise<void> }) | undefined>
> = {
  webhook: (d) => new WebhookProvider({ secret: d.webhookSecret, timeoutMs: d.webhookTimeoutMs, egress: d.egress }),
  email: (d) => (d.smtp ? new SmtpProvider(d.smtp) : undefined),
  sms: (d) => (d.twilio ? new TwilioProvider(d.twilio) : undefined),
  push: (d) => {
    if (!d.devices) return undefined;
    const senders = pushSenders(d);
    return senders.size > 0 ? new PushProvider({ senders, devices: d.devices }) : undefined;
  },
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
