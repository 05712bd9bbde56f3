/**
 * Configuration: every setting is read here, from the environment, into one typed object (each
 * setting's type, bounds and description: config-schema.ts; checks of push keys: config-push-keys.ts).
 * A bad value stops start-up with a message naming the setting and what it allows; the message never
 * holds a secret: the value of a secret setting is not shown at all, a URL is shown with its password
 * and credential parameters replaced (src/redact.ts).
 * With nothing set, Herald runs embedded on port 8080 with its data in ./.herald.
 */
import type { z } from 'zod';
import { readServiceAccount, type ServiceAccount, ServiceAccountError } from './channels/fcm-service-account.ts';
import { ConfigError } from './config-error.ts';
import { type ProvidersFile, readProvidersFile } from './config-providers.ts';
import { readApnsKey, vapidPublicKeyOf } from './config-push-keys.ts';
import { DEFAULT_LANE_CONCURRENCY, schema } from './config-schema.ts';
import type { Channel, Lane } from './core/types.ts';
import { leaseMarginMs } from './core/worker.ts';
import { isSecretSetting, isUrlSetting, redact, secretsIn } from './redact.ts';

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

/** The VAPID settings: set together or not at all. */
const VAPID_REQUIRED = ['HERALD_VAPID_PUBLIC_KEY', 'HERALD_VAPID_PRIVATE_KEY', 'HERALD_VAPID_SUBJECT'] as const;

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
