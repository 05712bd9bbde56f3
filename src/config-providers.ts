/**
 * HERALD_CONFIG: a JSON file for what one environment variable per setting cannot say — several
 * providers per channel, their fallback order, and each provider's rate limit and circuit breaker.
 *
 * ```json
 * {
 *   "providers": {
 *     "smtp": { "rateLimit": { "perSecond": 200, "burst": 20 } },
 *     "smtp-backup": { "type": "smtp", "url": "smtp://relay2.example.com:587", "from": "Acme <n@acme.com>",
 *                      "circuitBreaker": { "failures": 3, "openMs": 10000 } },
 *     "twilio-eu": { "type": "twilio", "accountSid": "AC…", "authToken": "…", "from": "+4915…" }
 *   },
 *   "channels": { "email": ["smtp", "smtp-backup"], "sms": ["twilio", "twilio-eu"] }
 * }
 * ```
 *
 * - An entry with a `type` defines another provider (`smtp` or `twilio`, with the fields of the
 *   environment settings of that provider). An entry without one sets the rate limit or breaker of a
 *   provider the environment defines: `smtp` (HERALD_SMTP_URL), `twilio` (HERALD_TWILIO_*), `push`
 *   (Web Push, FCM and APNs together), `webhook`, `chat`.
 * - `channels` gives a channel's providers in fallback order; a channel it leaves out uses its
 *   providers in the order they are defined, the environment's first.
 * - The file may hold credentials: keep it readable by Herald alone. Errors name the file and the
 *   field, never a credential's value.
 */
import { readFileSync } from 'node:fs';
import addressparser from 'nodemailer/lib/addressparser';
import { z } from 'zod';
import type { BreakerSettings } from './core/circuit-breaker.ts';
import type { PaceSettings } from './core/provider-pacer.ts';
import { CHANNELS, type Channel } from './core/types.ts';

/** `smtp://user:pass@host:port` or `smtps://…`, with a host. */
export const smtpUrl = z
  .string()
  .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
  .refine((s) => {
    try {
      return new URL(s).hostname !== '';
    } catch {
      return false;
    }
  }, 'must be a URL like smtp://user:pass@host:587');

/** One address, alone (`herald@example.com`) or with a display name (`Herald <herald@example.com>`). */
export const mailbox = z.string().refine((s) => {
  const parsed = addressparser(s);
  const only = parsed.length === 1 ? parsed[0] : undefined;
  return !!only && 'address' in only && z.email().safeParse(only.address).success;
}, 'must be one email address, e.g. herald@example.com or "Herald <herald@example.com>"');

export const twilioSid = z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'must be AC followed by 32 hexadecimal digits');
export const twilioFrom = z
  .string()
  .regex(
    /^(\+[1-9][0-9]{6,14}|MG[0-9a-fA-F]{32})$/,
    'must be an E.164 number (+14155550100) or a messaging service sid (MG…)',
  );
export const httpBaseUrl = z
  .string()
  .regex(/^https?:\/\/[^/?#\s]+(\/[^?#\s]*)?$/, 'must be an http:// or https:// URL without query');

/** Burst defaults to 1: sends evenly spaced, never two at once. */
const rateLimit = z
  .strictObject({
    perSecond: z.number().positive().max(1_000_000),
    burst: z.number().int().min(1).max(1_000_000).default(1),
  })
  .transform((r): PaceSettings => ({ perSecond: r.perSecond, burst: r.burst }));
const circuitBreaker = z.union([
  z.literal(false),
  z.strictObject({
    failures: z.number().int().min(1).max(1000).default(5),
    openMs: z.number().int().min(100).max(3_600_000).default(30_000),
  }),
]);
const tuning = { rateLimit: rateLimit.optional(), circuitBreaker: circuitBreaker.optional() };

/** A provider the file defines, by `type`; unknown types are refused naming the field. */
const defined = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('smtp'),
    url: smtpUrl,
    from: mailbox.optional(),
    timeoutMs: z.number().int().min(100).max(300_000).optional(),
    maxConnections: z.number().int().min(1).max(1000).optional(),
    ...tuning,
  }),
  z.strictObject({
    type: z.literal('twilio'),
    accountSid: twilioSid,
    authToken: z.string().min(1),
    from: twilioFrom,
    baseUrl: httpBaseUrl.default('https://api.twilio.com'),
    ...tuning,
  }),
]);
/** An entry for a provider the environment defines: its tuning only. */
const tuned = z.strictObject(tuning);

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const file = z.strictObject({
  providers: z
    .record(
      z.string().regex(NAME, 'a provider name is a-z, 0-9, _ and - (up to 63)'),
      z.record(z.string(), z.unknown()),
    )
    .default({}),
  channels: z.partialRecord(z.enum(CHANNELS), z.array(z.string()).min(1, 'give at least one provider')).default({}),
});

/** A provider's rate limit and breaker; a field left out keeps the provider's default. */
export interface ProviderTuning {
  rateLimit?: PaceSettings;
  /** false: no breaker. */
  circuitBreaker?: BreakerSettings | false;
}

export type ExtraProvider = ProviderTuning & { name: string } & (
    | { type: 'smtp'; url: string; from?: string; timeoutMs?: number; maxConnections?: number }
    | { type: 'twilio'; accountSid: string; authToken: string; from: string; baseUrl: string }
  );

export interface ProvidersFile {
  path: string;
  /** Providers the file defines, in its order. */
  extra: ExtraProvider[];
  /** Tuning of the providers the environment defines, by name. */
  tuning: Map<string, ProviderTuning>;
  /** Fallback orders the file gives. */
  channels: Partial<Record<Channel, string[]>>;
}

/** The channel of each provider type a file may define. */
export const EXTRA_CHANNEL: Record<ExtraProvider['type'], Channel> = { smtp: 'email', twilio: 'sms' };

/**
 * Reads and checks HERALD_CONFIG. `builtIn`: the providers the environment defines, by name, with
 * their channel. Returns the file, or the problems (`HERALD_CONFIG (path) providers.x.url: …`).
 */
export function readProvidersFile(
  path: string,
  builtIn: ReadonlyMap<string, Channel>,
): { ok: true; file: ProvidersFile } | { ok: false; problems: string[] } {
  const where = `HERALD_CONFIG (${path})`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { ok: false, problems: [`${where}: cannot be read: ${(e as Error).message}`] };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, problems: [`${where}: is not JSON: ${(e as Error).message}`] };
  }
  const r = file.safeParse(json);
  // zod's messages name the field and the rule, never the value: no credential is shown.
  const shown = (i: z.core.$ZodIssue, at: PropertyKey[] = []) =>
    `${where} ${[...at, ...i.path].map(String).join('.')}: ${i.message}`;
  if (!r.success) return { ok: false, problems: r.error.issues.map((i) => shown(i)) };
  const problems: string[] = [];
  const extra: ExtraProvider[] = [];
  const tuning = new Map<string, ProviderTuning>();
  const channelOf = new Map(builtIn);
  for (const [name, raw] of Object.entries(r.data.providers)) {
    if ('type' in raw) {
      const e = defined.safeParse(raw);
      if (!e.success) problems.push(...e.error.issues.map((i) => shown(i, ['providers', name])));
      else if (builtIn.has(name)) {
        problems.push(`${where} providers.${name}: the environment already defines a provider named ${name}`);
      } else {
        extra.push({ ...e.data, name } as ExtraProvider);
        channelOf.set(name, EXTRA_CHANNEL[e.data.type]);
      }
      continue;
    }
    const e = tuned.safeParse(raw);
    if (!e.success) problems.push(...e.error.issues.map((i) => shown(i, ['providers', name])));
    else if (builtIn.has(name)) {
      tuning.set(name, e.data);
    } else {
      problems.push(
        `${where} providers.${name}: no provider named ${name} is configured; give a "type" to define one ` +
          `(configured: ${[...builtIn.keys()].join(', ') || 'none'})`,
      );
    }
  }
  const channels: Partial<Record<Channel, string[]>> = {};
  for (const [channel, names] of Object.entries(r.data.channels) as [Channel, string[]][]) {
    const seen = new Set<string>();
    for (const [i, name] of names.entries()) {
      const of = channelOf.get(name);
      if (of === undefined) problems.push(`${where} channels.${channel}.${i}: no provider is named ${name}`);
      else if (of !== channel) problems.push(`${where} channels.${channel}.${i}: ${name} sends ${of}, not ${channel}`);
      else if (seen.has(name)) problems.push(`${where} channels.${channel}.${i}: ${name} is listed twice`);
      seen.add(name);
    }
    channels[channel] = names;
  }
  return problems.length ? { ok: false, problems } : { ok: true, file: { path, extra, tuning, channels } };
}
