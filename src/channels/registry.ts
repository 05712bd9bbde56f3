/**
 * The provider table: one line per provider, tagged by channel. Adding a provider is one new file
 * and one line here. Deliveries on a channel without a provider are `skipped`, with the reason.
 * `in_app` has none: its send is the inbox write, which the store makes as it starts the delivery
 * (or, for a category with a template, as the worker records the rendered delivery).
 */

import type { ExtraProvider, ProvidersFile } from '../config-providers.ts';
import type { BreakerSettings } from '../core/circuit-breaker.ts';
import type { DeviceProvider } from '../core/devices.ts';
import type { DeviceStore, UserStore } from '../core/ports.ts';
import type { ChannelProvider, RateLimiter } from '../core/ports-channels.ts';
import type { PaceSettings } from '../core/provider-pacer.ts';
import { ProviderRoute, type ProviderRouteOptions, RoutedProvider } from '../core/provider-route.ts';
import type { Channel, DeliveryJob } from '../core/types.ts';
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
  /** HERALD_SMTP_TIMEOUT_MS: for SMTP providers HERALD_CONFIG defines without their own. */
  smtpTimeoutMs: number;
  /** Each email's List-Unsubscribe link, or null for none; undefined: no email carries one. */
  listUnsubscribe?: ((job: DeliveryJob) => Promise<string | null>) | undefined;
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

export type Provider = ChannelProvider & { close?(): Promise<void> };

/** A provider as the registry made it: its name and channel come from the provider itself. */
export interface BuiltProvider {
  provider: Provider;
  /** Its default breaker: providers of the operator's (SMTP, Twilio, push services) have one; user-URL ones not. */
  breaker: BreakerSettings | null;
  /** The longest one send can take. */
  timeoutMs: number;
}

/** Opens after 5 transient failures in a row; probes after 30 s. */
export const DEFAULT_BREAKER: BreakerSettings = { failures: 5, openMs: 30_000 };

/** A factory returns undefined when its provider is not configured. */
const BUILT_IN: Record<string, (deps: ProviderDeps) => Promise<BuiltProvider | undefined>> = {
  webhook: async (d) => ({
    provider: new WebhookProvider({ secret: d.webhookSecret, timeoutMs: d.webhookTimeoutMs, egress: d.egress }),
    timeoutMs: d.webhookTimeoutMs,
    // One receiver's failures say nothing of another's: no breaker (per-destination limits instead).
    breaker: null,
  }),
  email: async (d) =>
    d.smtp
      ? {
          provider: new (await import('./provider-smtp.ts')).SmtpProvider({
            ...d.smtp,
            listUnsubscribe: d.listUnsubscribe,
          }),
          breaker: DEFAULT_BREAKER,
          timeoutMs: d.smtp.timeoutMs,
        }
      : undefined,
  sms: async (d) =>
    d.twilio
      ? {
          provider: new (await import('./provider-twilio.ts')).TwilioProvider(d.twilio),
          breaker: DEFAULT_BREAKER,
          timeoutMs: d.twilio.timeoutMs,
        }
      : undefined,
  push: async (d) => {
    if (!d.devices) return undefined;
    const senders = await pushSenders(d);
    return senders.size > 0
      ? {
          provider: new PushProvider({ senders, devices: d.devices }),
          breaker: DEFAULT_BREAKER,
          timeoutMs: d.webhookTimeoutMs,
        }
      : undefined;
  },
  chat: async (d) => ({
    provider: new ChatProvider({ timeoutMs: d.webhookTimeoutMs, egress: d.egress, users: d.users }),
    timeoutMs: d.webhookTimeoutMs,
    breaker: null,
  }),
};

/** Providers HERALD_CONFIG defines, by type: one line each. */
const EXTRA: {
  [T in ExtraProvider['type']]: (p: Extract<ExtraProvider, { type: T }>, d: ProviderDeps) => Promise<Provider>;
} = {
  smtp: async (p, d) =>
    new (await import('./provider-smtp.ts')).SmtpProvider({
      name: p.name,
      url: p.url,
      from: p.from ?? d.smtp?.from ?? '',
      timeoutMs: p.timeoutMs ?? d.smtpTimeoutMs,
      maxConnections: p.maxConnections ?? d.smtp?.maxConnections ?? 8,
      listUnsubscribe: d.listUnsubscribe,
    }),
  twilio: async (p, d) =>
    new (await import('./provider-twilio.ts')).TwilioProvider({
      name: p.name,
      accountSid: p.accountSid,
      authToken: p.authToken,
      from: p.from,
      baseUrl: p.baseUrl.replace(/\/+$/, ''),
      timeoutMs: d.webhookTimeoutMs,
    }),
};

/** Every configured provider: the environment's, then HERALD_CONFIG's, in its order. */
export async function buildProviders(deps: ProviderDeps, file?: ProvidersFile): Promise<BuiltProvider[]> {
  const out: BuiltProvider[] = [];
  for (const make of Object.values(BUILT_IN)) {
    const built = await make(deps);
    if (built) out.push(built);
  }
  for (const p of file?.extra ?? []) {
    const make = EXTRA[p.type] as (p: ExtraProvider, d: ProviderDeps) => Promise<Provider>;
    const provider = await make(p, deps);
    const timeoutMs = p.type === 'smtp' ? (p.timeoutMs ?? deps.smtpTimeoutMs) : deps.webhookTimeoutMs;
    out.push({ provider, breaker: DEFAULT_BREAKER, timeoutMs });
  }
  return out;
}

/** Where paced providers keep their tokens; by default each process paces on its own. */
export interface RouteSharing {
  /**
   * A limiter of the pace's rate and burst, shared by every worker process (the Redis one), for
   * each provider with a `rateLimit`: the provider's limit then holds for all of them together.
   */
  paceLimiter?: (pace: PaceSettings) => RateLimiter;
}

/**
 * Each channel's route: its providers in the fallback order HERALD_CONFIG gives (or in the order
 * built), each with the breaker and rate limit the file sets (or its default).
 */
export function buildRoutes(
  built: readonly BuiltProvider[],
  file: ProvidersFile | undefined,
  options: ProviderRouteOptions,
  sharing: RouteSharing = {},
): Map<Channel, ProviderRoute> {
  const byChannel = new Map<Channel, BuiltProvider[]>();
  for (const b of built) byChannel.set(b.provider.channel, [...(byChannel.get(b.provider.channel) ?? []), b]);
  const routes = new Map<Channel, ProviderRoute>();
  for (const [channel, all] of byChannel) {
    const order = file?.channels[channel];
    const chosen = order ? order.map((name) => all.find((b) => b.provider.name === name) as BuiltProvider) : all;
    const routed = chosen.map((b) => {
      const tuning = file?.tuning.get(b.provider.name) ?? file?.extra.find((e) => e.name === b.provider.name);
      const breaker = tuning?.circuitBreaker === undefined ? b.breaker : tuning.circuitBreaker || null;
      const pace = tuning?.rateLimit ?? null;
      const paceLimiter = pace && sharing.paceLimiter ? sharing.paceLimiter(pace) : undefined;
      return new RoutedProvider(b.provider, { breaker, pace, paceLimiter, timeoutMs: b.timeoutMs });
    });
    routes.set(channel, new ProviderRoute(channel, routed, options));
  }
  return routes;
}
