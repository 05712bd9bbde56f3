/**
 * The provider table: one line per provider, tagged by channel. Adding a provider is one new file
 * and one line here. Deliveries on a channel without a provider are `skipped`, with the reason.
 * `in_app` has none: its send is the inbox write, which the store makes as it starts the delivery
 * (or, for a category with a template, as the worker records the rendered delivery).
 */
import type { DeviceProvider } from '../core/devices.ts';
import type { ChannelProvider, DeviceStore, UserStore } from '../core/ports.ts';
import type { Channel } from '../core/types.ts';
import { GuardedHttpClient } from './egress-http.ts';
import type { EgressPolicy } from './egress-policy.ts';
import { ChatProvider } from './provider-chat.ts';
import { PushProvider } from './provider-push.ts';
import type { TwilioOptions } from './provider-twilio.ts';
import { WebhookProvider } from './provider-webhook.ts';
import type { ApnsOptions } from './push-apns.ts';
import type { FcmOptions } from './push-fcm.ts';
import type { PushSender } from './push-sender.ts';
import type { VapidKeys } from './push-webpush.ts';

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

/*
 * Providers that need an operator's settings (SMTP, Twilio, Web Push, FCM, APNs) are imported only
 * when configured: their libraries cost every process memory, and every garbage collection time,
 * whether they send or not (ws-storm measured +16 % CPU per connect with all of them loaded).
 */

/** The push senders configured, by device provider. */
async function pushSenders(d: ProviderDeps): Promise<Map<DeviceProvider, PushSender>> {
  const senders = new Map<DeviceProvider, PushSender>();
  if (d.webpush) {
    const { WebPushSender } = await import('./push-webpush.ts');
    const http = new GuardedHttpClient({ policy: d.egress });
    senders.set('webpush', new WebPushSender({ vapid: d.webpush.vapid, http, timeoutMs: d.webpush.timeoutMs }));
  }
  if (d.fcm) {
    const fcm = (await import('./push-fcm.ts')).createFcmSender(d.fcm);
    if (fcm) senders.set('fcm', fcm);
  }
  if (d.apns) {
    const apns = (await import('./push-apns.ts')).createApnsSender(d.apns);
    if (apns) senders.set('apns', apns);
  }
  return senders;
}

type Provider = ChannelProvider & { close?(): Promise<void> };

/** A factory returns undefined when its provider is not configured. */
const PROVIDERS: Partial<Record<Channel, (deps: ProviderDeps) => Promise<Provider | undefined>>> = {
  webhook: async (d) =>
    new WebhookProvider({ secret: d.webhookSecret, timeoutMs: d.webhookTimeoutMs, egress: d.egress }),
  email: async (d) => (d.smtp ? new (await import('./provider-smtp.ts')).SmtpProvider(d.smtp) : undefined),
  sms: async (d) => (d.twilio ? new (await import('./provider-twilio.ts')).TwilioProvider(d.twilio) : undefined),
  push: async (d) => {
    if (!d.devices) return undefined;
    const senders = await pushSenders(d);
    return senders.size > 0 ? new PushProvider({ senders, devices: d.devices }) : undefined;
  },
  chat: async (d) => new ChatProvider({ timeoutMs: d.webhookTimeoutMs, egress: d.egress, users: d.users }),
};

export async function buildProviders(deps: ProviderDeps): Promise<Map<Channel, Provider>> {
  const out = new Map<Channel, Provider>();
  for (const [channel, make] of Object.entries(PROVIDERS)) {
    const provider = await make?.(deps);
    if (provider) out.set(channel as Channel, provider);
  }
  return out;
}
