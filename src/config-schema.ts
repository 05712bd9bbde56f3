/**
 * Every setting Herald reads from the environment: its type, bounds, default and description (shown
 * by `herald start --help`). Checks across settings, and the typed Config, are in config.ts.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { httpBaseUrl, mailbox, smtpUrl, twilioFrom, twilioSid } from './config-providers.ts';
import { vapidPublicKeyOf, vapidPublicKeyProblem } from './config-push-keys.ts';
import { formatIsoDuration, parseIsoDuration } from './core/iso-duration.ts';
import { LANES, type Lane } from './core/types.ts';

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

export const schema = z.object({
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

export const DEFAULT_LANE_CONCURRENCY: Record<Lane, number> = { critical: 16, high: 16, normal: 32, bulk: 16 };
