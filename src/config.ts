/**
 * Configuration: every setting is read here, from the environment, into one typed object.
 * A bad value stops start-up with a message naming the setting and what it allows; the message never
 * holds a secret: the value of a secret setting is not shown at all, a URL is shown with its password
 * and credential parameters replaced (src/redact.ts).
 * With nothing set, Herald runs embedded on port 8080 with its data in ./.herald.
 */
import { createECDH, createPrivateKey, ECDH } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { readServiceAccount, type ServiceAccount, ServiceAccountError } from './channels/fcm-service-account.ts';
import {
  httpBaseUrl,
  mailbox,
  type ProvidersFile,
  readProvidersFile,
  smtpUrl,
  twilioFrom,
  twilioSid,
} from './config-providers.ts';
import { formatIsoDuration, parseIsoDuration } from './core/iso-duration.ts';
import { type Channel, LANES, type Lane } from './core/types.ts';
import { leaseMarginMs } from './core/worker.ts';
import { isSecretSetting, isUrlSetting, redact, secretsIn } from './redact.ts';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const laneConcurrency = z.string().transform((s, ctx) => {
  const out: Partial<Record<Lane, number>> = {};
  for (const part of s.split(',').filter(Boolean)) {
    const [lane, n] = part.split('=').map((x) => x.trim());
    const count = Number(n);
    if (!LANES.includes(lane as Lane) || !Number.isInteger(count) || count < 1 || count > 1000) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not lane=n (lanes: ${LANES.join(', ')}; n in 1..1000)` });
      return z.NEVER;
    }
    out[lane as Lane] = count;
  }
  return out;
});

/** An ISO 8601 duration (`P30D`, `PT1H`; core/iso-duration.ts) from `minMs` to `maxMs`; in milliseconds. */
function isoDuration(minMs: number, maxMs: number) {
  return z.string().transform((s, ctx) => {
    const r = parseIsoDuration(s.trim(), maxMs);
    if (!r.ok || r.ms < minMs) {
      ctx.addIssue({ code: 'custom', message: r.ok ? `must be at least ${formatIsoDuration(minMs)}` : r.message });
      return z.NEVER;
    }
    return r.ms;
  });
}

const secret = z.string().min(16, 'must be at least 16 characters');

/** A duration: `30d`, `12h`, `45m`, `90s` or plain seconds; in seconds. */
const duration = z.string().transform((s, ctx) => {
  const m = /^(\d{1,9})\s*([smhd]?)$/.exec(s.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration like 30d, 12h, 45m, 90s or a number of seconds' });
    return z.NEVER;
  }
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(m[1]) * unit;
  if (seconds < 60 || seconds > 366 * 86_400) {
    ctx.addIssue({ code: 'custom', message: 'must be between 1 minute and 366 days' });
    return z.NEVER;
  }
  return seconds;
});

/** Comma-separated CIDR blocks (`127.0.0.0/8,::1/128`); a bare address is a block of one. */
const cidrList = z.string().transform((s, ctx) => {
  const out: string[] = [];
  for (const part of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const [addr = '', bits, extra] = part.split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
    if (family === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not a CIDR block like 10.0.0.0/8 or ::1/128` });
      return z.NEVER;
    }
    out.push(`${addr}/${prefix}`);
  }
  return out;
});

const schema = z.object({
  PORT: int(0, 65535).default(8080).describe('HTTP and WebSocket port'),
  HOST: z.string().min(1).default('127.0.0.1').describe('interface to listen on (0.0.0.0 in a container)'),
  HERALD_DATA_DIR: z.string().min(1).default('./.herald').describe('embedded store data, generated secrets'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional()
    .describe('PostgreSQL instead of the embedded store'),
  REDIS_URL: z
    .string()
    .regex(
      /^rediss?:\/\/[^,\s]+(,\s*rediss?:\/\/[^,\s]+)*$/,
      'must be a redis:// or rediss:// URL, or several separated by commas (the nodes of a Redis Cluster)',
    )
    .optional()
    .describe("Redis (one URL, or a Redis Cluster's nodes separated by commas) for presence, live frames, rate limits"),
  HERALD_BUS: z
    .enum(['queue-table', 'redis-streams'])
    .optional()
    .describe('the bus: the deliveries table, or Redis Streams (distributed mode only)'),
  HERALD_BUS_MAX_LENGTH: int(1_000, 100_000_000)
    .default(1_000_000)
    .describe('jobs one lane of the Redis bus holds before ingest answers 429'),
  HERALD_RECONCILE_OVERDUE_MS: int(1_000, 3_600_000)
    .default(30_000)
    .describe('how late a pending delivery must be before the scheduler re-announces it to a Redis bus'),
  HERALD_API_KEYS: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    )
    .pipe(z.array(secret).min(1, 'must hold at least one key'))
    .optional()
    .describe('comma-separated producer keys'),
  HERALD_JWT_SECRET: secret.optional().describe('HS256 secret for user tokens'),
  HERALD_WEBHOOK_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]{24,}={0,2}$/, 'must be whsec_ followed by at least 18 bytes of base64')
    .optional()
    .describe('Standard Webhooks signing secret'),
  HERALD_RETRY_BASE_MS: int(1, 86_400_000).default(5000).describe('first retry delay; doubles each attempt'),
  HERALD_RETRY_MAX_ATTEMPTS: int(1, 100).default(5).describe('attempts before a delivery is dead'),
  HERALD_RETRY_MAX_DELAY_MS: int(1, 7 * 86_400_000)
    .default(3_600_000)
    .describe('cap on one backoff delay'),
  HERALD_LEASE_MS: int(500, 3_600_000).default(30_000).describe('visibility timeout of a claimed delivery'),
  HERALD_WEBHOOK_TIMEOUT_MS: int(100, 300_000).default(10_000).describe('webhook request timeout'),
  HERALD_WEBHOOK_MAX_PER_DESTINATION: int(1, 10_000)
    .default(8)
    .describe('webhook and chat requests in flight to one origin, per worker process'),
  HERALD_LANE_CONCURRENCY: laneConcurrency.default({}).describe('e.g. critical=16,high=16,normal=32,bulk=16'),
  HERALD_MAX_BODY_BYTES: int(1024, 64 * 1024 * 1024)
    .default(1_048_576)
    .describe('largest accepted request body'),
  HERALD_MAX_BATCH_BODY_BYTES: int(1024, 256 * 1024 * 1024)
    .default(16 * 1_048_576)
    .describe('largest accepted body of POST /v1/notifications/batch'),
  HERALD_PG_POOL_SIZE: int(1, 500).default(16).describe('PostgreSQL connections'),
  HERALD_INGEST_MAX_PENDING: int(1, 10_000_000).default(20_000).describe('POSTs waiting for commit before 429'),
  HERALD_POLL_MS: int(5, 60_000).default(250).describe('idle poll interval of workers'),
  HERALD_FANOUT_ON_READ_ABOVE: int(0, Number.MAX_SAFE_INTEGER)
    .default(100_000)
    .describe('topics with more subscribers than this get their in-app channel by fan-out on read'),
  HERALD_FANOUT_PAGE: int(100, 50_000).default(10_000).describe('most subscribers one fan-out page serves'),
  HERALD_WS_MAX_BUFFER_BYTES: int(4096, 64 * 1024 * 1024)
    .default(262_144)
    .describe('queued bytes beyond which a WebSocket is a slow consumer (closed with 4408)'),
  HERALD_WS_HEARTBEAT_MS: int(1000, 600_000).default(25_000).describe('WebSocket ping interval; silent sockets end'),
  HERALD_EGRESS_ALLOW: cidrList
    .default([])
    .describe('CIDR blocks user-supplied URLs may reach although not public, e.g. 127.0.0.0/8,::1/128'),
  HERALD_RATE_LIMIT_RPS: z.coerce
    .number()
    .positive('must be more than 0')
    .max(1_000_000)
    .optional()
    .describe('requests per second per API key (token bucket); unset: no limit'),
  HERALD_RATE_LIMIT_BURST: int(1, 10_000_000)
    .optional()
    .describe('token bucket size per API key; default: RPS rounded up'),
  HERALD_MAX_SOCKETS_PER_USER: int(1, 100_000).default(64).describe('WebSockets one user may hold at once'),
  HERALD_MAX_TOKEN_TTL: duration.default(30 * 86_400).describe('longest user-token lifetime accepted (e.g. 30d)'),
  HERALD_RETENTION: isoDuration(60_000, 3660 * 86_400_000)
    .default(30 * 86_400_000)
    .describe('how long a notification is kept after it is due when neither it nor its category has a ttl'),
  HERALD_RETENTION_EVERY: isoDuration(1_000, 86_400_000)
    .default(3_600_000)
    .describe('interval of the retention run (scheduler role)'),
  HERALD_MAX_CONNECTIONS: int(1, 1_000_000)
    .default(20_000)
    .describe('open TCP connections (HTTP and WebSocket) at once'),
  HERALD_REQUEST_TIMEOUT_MS: int(1000, 3_600_000)
    .default(60_000)
    .describe('time for a request to send its headers and its body (408 after)'),
  HERALD_PG_CONNECT_TIMEOUT_MS: int(100, 600_000).default(10_000).describe('PostgreSQL connection timeout'),
  HERALD_PG_STATEMENT_TIMEOUT_MS: int(100, 3_600_000).default(30_000).describe('PostgreSQL statement timeout'),
  HERALD_CONFIG: z
    .string()
    .min(1)
    .optional()
    .describe(
      'path to a JSON file: several providers per channel, fallback order, per-provider rate limits and breakers',
    ),
  HERALD_SMTP_URL: smtpUrl.optional().describe('SMTP server for email: smtp://user:pass@host:port or smtps://…'),
  HERALD_EMAIL_FROM: mailbox.optional().describe('From of every email; required with HERALD_SMTP_URL'),
  HERALD_SMTP_TIMEOUT_MS: int(100, 300_000)
    .default(10_000)
    .describe('bound on one email send: connecting, greeting, each reply'),
  HERALD_SMTP_MAX_CONNECTIONS: int(1, 1000).default(8).describe('pooled SMTP connections'),
  HERALD_PUBLIC_URL: z
    .string()
    .refine((s) => {
      const u = URL.parse(s);
      return (
        !!u && /^https?:$/.test(u.protocol) && u.hostname !== '' && !u.username && !u.password && !u.search && !u.hash
      );
    }, 'must be an https:// (or http://) URL without credentials, query or fragment, e.g. https://herald.example.com')
    .transform((s) => s.replace(/\/+$/, ''))
    .optional()
    .describe("where users' browsers and mail clients reach Herald (the unsubscribe links of emails)"),
  HERALD_TWILIO_ACCOUNT_SID: twilioSid
    .optional()
    .describe('Twilio account for SMS (with the auth token and the sender)'),
  HERALD_TWILIO_AUTH_TOKEN: z.string().min(1).optional().describe("the Twilio account's auth token"),
  HERALD_TWILIO_FROM: twilioFrom.optional().describe('SMS sender: an E.164 number or a messaging service sid (MG…)'),
  HERALD_TWILIO_BASE_URL: httpBaseUrl.default('https://api.twilio.com').describe("Twilio's API origin"),
  HERALD_FCM_SERVICE_ACCOUNT: z
    .string()
    .min(1)
    .optional()
    .describe('path to the service-account JSON file for FCM push'),
  HERALD_FCM_BASE_URL: httpBaseUrl.default('https://fcm.googleapis.com').describe("FCM's API origin"),
  HERALD_APNS_KEY: z
    .string()
    .min(1)
    .optional()
    .describe('path to the APNs auth key (.p8, PKCS#8 P-256) for token auth'),
  HERALD_APNS_KEY_ID: z
    .string()
    .regex(/^[A-Z0-9]{10}$/, 'must be the 10-character key id Apple shows for the key')
    .optional()
    .describe("the APNs key's id (the JWT's kid)"),
  HERALD_APNS_TEAM_ID: z
    .string()
    .regex(/^[A-Z0-9]{10}$/, 'must be the 10-character Apple developer team id')
    .optional()
    .describe("Apple developer team id (the JWT's iss)"),
  HERALD_APNS_TOPIC: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, "must be the app's bundle id, e.g. com.example.app")
    .optional()
    .describe("the app's bundle id (apns-topic)"),
  HERALD_APNS_BASE_URL: z
    .string()
    .regex(/^https?:\/\/[^/?#\s]+\/?$/, 'must be an https:// (or http:// for h2c) origin without path or query')
    .default('https://api.push.apple.com')
    .describe('APNs origin (https://api.sandbox.push.apple.com for development builds)'),
  HERALD_VAPID_PUBLIC_KEY: z
    .string()
    .superRefine((k, ctx) => {
      const why = vapidPublicKeyProblem(k);
      if (why) ctx.addIssue({ code: 'custom', message: why });
    })
    .optional()
    .describe('Web Push VAPID public key: an uncompressed P-256 point, base64url'),
  HERALD_VAPID_PRIVATE_KEY: z
    .string()
    .refine((k) => vapidPublicKeyOf(k) !== null, 'must be a P-256 private key: 32 bytes, base64url')
    .optional()
    .describe('Web Push VAPID private key (base64url)'),
  HERALD_VAPID_SUBJECT: z
    .string()
    .regex(/^(mailto:[^\s@]+@[^\s@]+|https:\/\/[^\s/?#]+\S*)$/, 'must be a mailto: address or an https: URL')
    .optional()
    .describe('Web Push VAPID subject: mailto: or https: contact of the sender'),
  HERALD_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('fatal, error, warn, info, debug, trace or silent'),
});

const DEFAULT_LANE_CONCURRENCY: Record<Lane, number> = { critical: 16, high: 16, normal: 32, bulk: 16 };

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  /** The bus: the deliveries table (default; ADR 17), or Redis Streams (only with DATABASE_URL and REDIS_URL). */
  bus: 'queue-table' | 'redis-streams';
  /** Jobs one lane of the Redis bus holds before it counts as full (ingest answers 429). */
  busMaxLength: number;
  /** How late a pending delivery is before the reconciler re-announces it (a bus that is not the store). */
  reconcileOverdueMs: number;
  apiKeys: string[] | undefined;
  jwtSecret: string | undefined;
  webhookSecret: string | undefined;
  retry: { baseMs: number; maxAttempts: number; maxDelayMs: number };
  leaseMs: number;
  webhookTimeoutMs: number;
  /** Sends in flight to one webhook or chat origin, per worker process. */
  webhookMaxPerDestination: number;
  laneConcurrency: Record<Lane, number>;
  maxBodyBytes: number;
  /** The body limit of POST /v1/notifications/batch (up to 1,000 notifications). */
  maxBatchBodyBytes: number;
  pgPoolSize: number;
  ingestMaxPending: number;
  pollMs: number;
  /** Topics above this many subscribers: in-app by fan-out on read (one item, read through the subscription). */
  fanoutOnReadAbove: number;
  /** Most subscribers one fan-out page serves (pages are also sized by time). */
  fanoutPage: number;
  wsMaxBufferBytes: number;
  wsHeartbeatMs: number;
  /** CIDR blocks (`a.b.c.d/n`, `x::/n`) user-supplied URLs may reach although not public. */
  egressAllow: string[];
  /** Per API key; undefined: no limit. */
  rateLimit: { rps: number; burst: number } | undefined;
  maxSocketsPerUser: number;
  /** Seconds. */
  maxTokenTtl: number;
  /** Default retention (HERALD_RETENTION), ms: a notification without a ttl leaves this long after it is due. */
  retentionMs: number;
  /** Interval of the retention run, ms. */
  retentionEveryMs: number;
  maxConnections: number;
  requestTimeoutMs: number;
  pgConnectTimeoutMs: number;
  pgStatementTimeoutMs: number;
  /** Email over SMTP; undefined when HERALD_SMTP_URL is unset (email deliveries are then `skipped`). */
  smtp: { url: string; from: string; timeoutMs: number; maxConnections: number } | undefined;
  /** HERALD_SMTP_TIMEOUT_MS, also for SMTP providers HERALD_CONFIG defines without their own. */
  smtpTimeoutMs: number;
  logLevel: z.infer<typeof schema>['HERALD_LOG_LEVEL'];
  /**
   * Where users' mail clients and browsers reach Herald, without a trailing slash (HERALD_PUBLIC_URL):
   * the base of every email's List-Unsubscribe link. Undefined: emails carry no List-Unsubscribe.
   */
  publicUrl: string | undefined;
  /** SMS through Twilio; undefined: not configured (SMS deliveries are `skipped`). */
  twilio: { accountSid: string; authToken: string; from: string; baseUrl: string } | undefined;
  /** FCM HTTP v1 (push to `fcm` devices); undefined: HERALD_FCM_SERVICE_ACCOUNT unset. */
  fcm: { serviceAccount: ServiceAccount; baseUrl: string } | undefined;
  /**
   * APNs token auth; undefined: not configured. `privateKey` is the .p8 file's PEM, read and checked
   * (a P-256 private key) at start-up; it is never logged or shown.
   */
  apns: { privateKey: string; keyId: string; teamId: string; topic: string; baseUrl: string } | undefined;
  /** Web Push with VAPID; undefined: not configured (no Web Push sender). */
  vapid: { publicKey: string; privateKey: string; subject: string } | undefined;
  /** HERALD_CONFIG, read and checked; undefined when unset. */
  providersFile: ProvidersFile | undefined;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * A setting as a configuration error shows it: `PORT="eighty"`; a URL with its credentials replaced;
 * a secret by its name alone (`HERALD_API_KEYS (key 2 of 3; value not shown)`).
 */
function shownValue(path: readonly PropertyKey[], value: string | undefined): string {
  const name = String(path[0]);
  if (isSecretSetting(name)) {
    const part = typeof path[1] === 'number' ? `key ${path[1] + 1}; ` : '';
    return `${name} (${part}value not shown)`;
  }
  if (isUrlSetting(name) && value !== undefined) return `${name}=${JSON.stringify(redact(value, { asUrl: true }))}`;
  return `${name}=${JSON.stringify(value)}`;
}

/** How a default is shown where the schema's own value would not say it (`herald start --help`). */
const SHOWN_DEFAULTS: Partial<Record<keyof typeof schema.shape, string>> = {
  DATABASE_URL: 'unset → embedded PGlite',
  REDIS_URL: 'unset → in-process',
  HERALD_BUS: 'queue-table',
  HERALD_API_KEYS: 'generated on first start',
  HERALD_JWT_SECRET: 'generated on first start',
  HERALD_WEBHOOK_SECRET: 'generated on first start',
  HERALD_LANE_CONCURRENCY: Object.entries(DEFAULT_LANE_CONCURRENCY)
    .map(([lane, n]) => `${lane}=${n}`)
    .join(','),
  HERALD_EGRESS_ALLOW: 'unset → only public addresses',
  HERALD_RATE_LIMIT_RPS: 'unset → no limit',
  HERALD_RATE_LIMIT_BURST: 'RPS rounded up',
  HERALD_MAX_TOKEN_TTL: '30d',
  HERALD_RETENTION: 'P30D',
  HERALD_RETENTION_EVERY: 'PT1H',
  HERALD_SMTP_URL: 'unset → email deliveries are skipped',
  HERALD_PUBLIC_URL: 'unset → emails carry no List-Unsubscribe',
  HERALD_TWILIO_ACCOUNT_SID: 'unset → SMS deliveries are skipped',
  HERALD_FCM_SERVICE_ACCOUNT: 'unset → no FCM push',
  HERALD_APNS_KEY: 'unset → no APNs pushes',
  HERALD_VAPID_PUBLIC_KEY: 'unset → no Web Push',
};

function shownDefault(name: keyof typeof schema.shape): string {
  const shown = SHOWN_DEFAULTS[name];
  if (shown !== undefined) return shown;
  const def = schema.shape[name]._zod.def as { type: string; defaultValue?: unknown };
  return def.type === 'default' ? String(def.defaultValue) : 'unset';
}

/**
 * The settings Herald reads, with their descriptions and defaults (for `herald start --help`), and
 * whether a setting is secret (its value is never shown).
 */
export const SETTINGS = (Object.keys(schema.shape) as (keyof typeof schema.shape)[]).map((name) => ({
  name,
  description: schema.shape[name].description ?? '',
  default: shownDefault(name),
  secret: isSecretSetting(name),
}));

/** Twilio's settings that are set together or not at all (the base URL has a default). */
const TWILIO_REQUIRED = ['HERALD_TWILIO_ACCOUNT_SID', 'HERALD_TWILIO_AUTH_TOKEN', 'HERALD_TWILIO_FROM'] as const;

/** APNs settings that are set together or not at all (the base URL has a default). */
const APNS_REQUIRED = ['HERALD_APNS_KEY', 'HERALD_APNS_KEY_ID', 'HERALD_APNS_TEAM_ID', 'HERALD_APNS_TOPIC'] as const;

/**
 * The APNs auth key file's PEM, checked to be a PKCS#8 P-256 private key. The message of a failure
 * names the file and what is wrong, never the file's content.
 */
function readApnsKey(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new ConfigError(
      `invalid configuration:\n  HERALD_APNS_KEY=${JSON.stringify(path)}: cannot read the file (${typeof code === 'string' ? code : 'error'})`,
    );
  }
  let ok = false;
  try {
    const key = createPrivateKey({ key: pem, format: 'pem' });
    ok = key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    ok = false;
  }
  if (!ok || !pem.includes('-----BEGIN PRIVATE KEY-----')) {
    throw new ConfigError(
      `invalid configuration:\n  HERALD_APNS_KEY=${JSON.stringify(path)}: must be an APNs auth key ` +
        '(a .p8 file: a PKCS#8 PEM P-256 private key, as Apple hands it out)',
    );
  }
  return pem;
}

/** The VAPID settings: set together or not at all. */
const VAPID_REQUIRED = ['HERALD_VAPID_PUBLIC_KEY', 'HERALD_VAPID_PRIVATE_KEY', 'HERALD_VAPID_SUBJECT'] as const;

/** Why a VAPID public key is unusable, or null: it must be an uncompressed P-256 point, base64url. */
function vapidPublicKeyProblem(key: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return 'must be base64url (A–Z, a–z, 0–9, -, _; no padding)';
  const bytes = Buffer.from(key, 'base64url');
  if (bytes.length !== 65 || bytes[0] !== 0x04) return 'must be an uncompressed P-256 point (65 bytes, 0x04 first)';
  try {
    ECDH.convertKey(bytes, 'prime256v1', undefined, undefined, 'uncompressed');
  } catch {
    return 'is not a point on the P-256 curve';
  }
  return null;
}

/** The public key of a VAPID private key; null when it is not a P-256 private key in base64url. */
function vapidPublicKeyOf(privateKey: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(privateKey)) return null;
  const bytes = Buffer.from(privateKey, 'base64url');
  if (bytes.length !== 32) return null;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(bytes);
    return ecdh.getPublicKey().toString('base64url');
  } catch {
    return null;
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw = Object.fromEntries(Object.keys(schema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]));
  const r = schema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${shownValue(i.path, raw[String(i.path[0])])}: ${i.message}`);
    // Belt and braces: a validation message that quoted a secret would lose it here.
    throw new ConfigError(redact(`invalid configuration:\n${lines.join('\n')}`, { secrets: secretsIn(raw) }));
  }
  const c = r.data;
  // A send must finish, and its outcome be recorded, within its lease; otherwise it may go out twice.
  const longestSend = c.HERALD_LEASE_MS - 2 * leaseMarginMs(c.HERALD_LEASE_MS);
  for (const [name, timeout] of [
    ['HERALD_WEBHOOK_TIMEOUT_MS', c.HERALD_WEBHOOK_TIMEOUT_MS],
    // Only a configured SMTP server sends within the lease.
    ['HERALD_SMTP_TIMEOUT_MS', c.HERALD_SMTP_URL || c.HERALD_CONFIG ? c.HERALD_SMTP_TIMEOUT_MS : 0],
  ] as const) {
    if (timeout > longestSend) {
      throw new ConfigError(
        `invalid configuration:\n  ${name}=${timeout}: must be at most ${longestSend} with ` +
          `HERALD_LEASE_MS=${c.HERALD_LEASE_MS} (a send that outlives its lease may be sent twice)`,
      );
    }
  }
  if (c.HERALD_SMTP_URL && !c.HERALD_EMAIL_FROM) {
    throw new ConfigError(
      'invalid configuration:\n  HERALD_EMAIL_FROM: must be set with HERALD_SMTP_URL (the From of every email)',
    );
  }
  const twilioSet = TWILIO_REQUIRED.filter((name) => c[name] !== undefined);
  if (twilioSet.length > 0 && twilioSet.length < TWILIO_REQUIRED.length) {
    const missing = TWILIO_REQUIRED.filter((name) => c[name] === undefined);
    throw new ConfigError(
      `invalid configuration:\n  ${missing.join(', ')}: must be set with ${twilioSet.join(', ')} ` +
        `(SMS through Twilio needs ${TWILIO_REQUIRED.join(', ')})`,
    );
  }
  let fcm: Config['fcm'];
  if (c.HERALD_FCM_SERVICE_ACCOUNT) {
    try {
      fcm = {
        serviceAccount: readServiceAccount(c.HERALD_FCM_SERVICE_ACCOUNT),
        baseUrl: c.HERALD_FCM_BASE_URL.replace(/\/+$/, ''),
      };
    } catch (e) {
      if (!(e instanceof ServiceAccountError)) throw e;
      throw new ConfigError(
        `invalid configuration:\n  HERALD_FCM_SERVICE_ACCOUNT=${JSON.stringify(c.HERALD_FCM_SERVICE_ACCOUNT)}: ${e.message}`,
      );
    }
  }
  const apnsSet = APNS_REQUIRED.filter((name) => c[name] !== undefined);
  if (apnsSet.length > 0 && apnsSet.length < APNS_REQUIRED.length) {
    const missing = APNS_REQUIRED.filter((name) => c[name] === undefined);
    throw new ConfigError(
      `invalid configuration:\n  ${missing.join(', ')}: must be set with ${apnsSet.join(', ')} ` +
        `(APNs token auth needs ${APNS_REQUIRED.join(', ')})`,
    );
  }
  const apns =
    c.HERALD_APNS_KEY && c.HERALD_APNS_KEY_ID && c.HERALD_APNS_TEAM_ID && c.HERALD_APNS_TOPIC
      ? {
          privateKey: readApnsKey(c.HERALD_APNS_KEY),
          keyId: c.HERALD_APNS_KEY_ID,
          teamId: c.HERALD_APNS_TEAM_ID,
          topic: c.HERALD_APNS_TOPIC,
          baseUrl: c.HERALD_APNS_BASE_URL.replace(/\/+$/, ''),
        }
      : undefined;
  const vapidSet = VAPID_REQUIRED.filter((name) => c[name] !== undefined);
  if (vapidSet.length > 0 && vapidSet.length < VAPID_REQUIRED.length) {
    const missing = VAPID_REQUIRED.filter((name) => c[name] === undefined);
    throw new ConfigError(
      `invalid configuration:\n  ${missing.join(', ')}: must be set with ${vapidSet.join(', ')} ` +
        `(Web Push needs ${VAPID_REQUIRED.join(', ')})`,
    );
  }
  if (c.HERALD_VAPID_PRIVATE_KEY && vapidPublicKeyOf(c.HERALD_VAPID_PRIVATE_KEY) !== c.HERALD_VAPID_PUBLIC_KEY) {
    throw new ConfigError(
      'invalid configuration:\n  HERALD_VAPID_PUBLIC_KEY: is not the public key of HERALD_VAPID_PRIVATE_KEY (value not shown)',
    );
  }
  const config: Omit<Config, 'providersFile'> = {
    port: c.PORT,
    host: c.HOST,
    dataDir: c.HERALD_DATA_DIR,
    databaseUrl: c.DATABASE_URL,
    redisUrl: c.REDIS_URL,
    bus: c.HERALD_BUS ?? 'queue-table',
    busMaxLength: c.HERALD_BUS_MAX_LENGTH,
    reconcileOverdueMs: c.HERALD_RECONCILE_OVERDUE_MS,
    apiKeys: c.HERALD_API_KEYS,
    jwtSecret: c.HERALD_JWT_SECRET,
    webhookSecret: c.HERALD_WEBHOOK_SECRET,
    retry: {
      baseMs: c.HERALD_RETRY_BASE_MS,
      maxAttempts: c.HERALD_RETRY_MAX_ATTEMPTS,
      maxDelayMs: c.HERALD_RETRY_MAX_DELAY_MS,
    },
    leaseMs: c.HERALD_LEASE_MS,
    webhookTimeoutMs: c.HERALD_WEBHOOK_TIMEOUT_MS,
    webhookMaxPerDestination: c.HERALD_WEBHOOK_MAX_PER_DESTINATION,
    laneConcurrency: { ...DEFAULT_LANE_CONCURRENCY, ...c.HERALD_LANE_CONCURRENCY },
    maxBodyBytes: c.HERALD_MAX_BODY_BYTES,
    maxBatchBodyBytes: c.HERALD_MAX_BATCH_BODY_BYTES,
    pgPoolSize: c.HERALD_PG_POOL_SIZE,
    ingestMaxPending: c.HERALD_INGEST_MAX_PENDING,
    pollMs: c.HERALD_POLL_MS,
    fanoutOnReadAbove: c.HERALD_FANOUT_ON_READ_ABOVE,
    fanoutPage: c.HERALD_FANOUT_PAGE,
    wsMaxBufferBytes: c.HERALD_WS_MAX_BUFFER_BYTES,
    wsHeartbeatMs: c.HERALD_WS_HEARTBEAT_MS,
    egressAllow: c.HERALD_EGRESS_ALLOW,
    rateLimit:
      c.HERALD_RATE_LIMIT_RPS === undefined
        ? undefined
        : { rps: c.HERALD_RATE_LIMIT_RPS, burst: c.HERALD_RATE_LIMIT_BURST ?? Math.ceil(c.HERALD_RATE_LIMIT_RPS) },
    maxSocketsPerUser: c.HERALD_MAX_SOCKETS_PER_USER,
    maxTokenTtl: c.HERALD_MAX_TOKEN_TTL,
    retentionMs: c.HERALD_RETENTION,
    retentionEveryMs: c.HERALD_RETENTION_EVERY,
    maxConnections: c.HERALD_MAX_CONNECTIONS,
    requestTimeoutMs: c.HERALD_REQUEST_TIMEOUT_MS,
    pgConnectTimeoutMs: c.HERALD_PG_CONNECT_TIMEOUT_MS,
    pgStatementTimeoutMs: c.HERALD_PG_STATEMENT_TIMEOUT_MS,
    smtp:
      c.HERALD_SMTP_URL && c.HERALD_EMAIL_FROM
        ? {
            url: c.HERALD_SMTP_URL,
            from: c.HERALD_EMAIL_FROM,
            timeoutMs: c.HERALD_SMTP_TIMEOUT_MS,
            maxConnections: c.HERALD_SMTP_MAX_CONNECTIONS,
          }
        : undefined,
    smtpTimeoutMs: c.HERALD_SMTP_TIMEOUT_MS,
    logLevel: c.HERALD_LOG_LEVEL,
    publicUrl: c.HERALD_PUBLIC_URL,
    twilio:
      c.HERALD_TWILIO_ACCOUNT_SID && c.HERALD_TWILIO_AUTH_TOKEN && c.HERALD_TWILIO_FROM
        ? {
            accountSid: c.HERALD_TWILIO_ACCOUNT_SID,
            authToken: c.HERALD_TWILIO_AUTH_TOKEN,
            from: c.HERALD_TWILIO_FROM,
            baseUrl: c.HERALD_TWILIO_BASE_URL.replace(/\/+$/, ''),
          }
        : undefined,
    fcm,
    apns,
    vapid:
      c.HERALD_VAPID_PUBLIC_KEY && c.HERALD_VAPID_PRIVATE_KEY && c.HERALD_VAPID_SUBJECT
        ? {
            publicKey: c.HERALD_VAPID_PUBLIC_KEY,
            privateKey: c.HERALD_VAPID_PRIVATE_KEY,
            subject: c.HERALD_VAPID_SUBJECT,
          }
        : undefined,
  };
  return {
    ...config,
    providersFile: c.HERALD_CONFIG ? providersFileOf(c.HERALD_CONFIG, config, c.HERALD_EMAIL_FROM) : undefined,
  };
}

/** The providers the environment defines, by name, with their channel (see config-providers.ts). */
export function builtInProviders(c: Pick<Config, 'smtp' | 'twilio' | 'vapid' | 'fcm' | 'apns'>): Map<string, Channel> {
  const out = new Map<string, Channel>([
    ['webhook', 'webhook'],
    ['chat', 'chat'],
  ]);
  if (c.smtp) out.set('smtp', 'email');
  if (c.twilio) out.set('twilio', 'sms');
  if (c.vapid || c.fcm || c.apns) out.set('push', 'push');
  return out;
}

/** Reads HERALD_CONFIG; an SMTP provider it defines without `from` sends from HERALD_EMAIL_FROM. */
function providersFileOf(path: string, c: Omit<Config, 'providersFile'>, emailFrom: string | undefined): ProvidersFile {
  const r = readProvidersFile(path, builtInProviders(c));
  if (!r.ok) throw new ConfigError(`invalid configuration:\n  ${r.problems.join('\n  ')}`);
  for (const p of r.file.extra) {
    if (p.type !== 'smtp' || p.from) continue;
    if (!emailFrom) {
      throw new ConfigError(
        `invalid configuration:\n  HERALD_CONFIG (${path}) providers.${p.name}.from: must be set when HERALD_EMAIL_FROM is not`,
      );
    }
    p.from = emailFrom;
  }
  return r.file;
}
