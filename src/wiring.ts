/**
 * The one place that reads the configuration and chooses adapters: store, bus, providers and the
 * rate limiter. Nothing else looks at DATABASE_URL or REDIS_URL. What it reports for people (the
 * description, warnings, errors) shows URLs through `redact`: never a password.
 */
import { join } from 'node:path';
import { QueueTableBus } from './bus/bus-queue-table.ts';
import { destinationResolver } from './channels/destinations.ts';
import { EgressPolicy } from './channels/egress-policy.ts';
import { buildProviders } from './channels/registry.ts';
import type { Config } from './config.ts';
import type { DestinationResolver } from './core/destination-limit.ts';
import { type ContentRenderer, Dispatcher, type SendGate } from './core/dispatch.ts';
import type { Bus, ChannelProvider, RateLimiter, Store } from './core/ports.ts';
import type { Channel, DeliveryJob } from './core/types.ts';
import { MemoryRateLimiter } from './ratelimit/rate-limiter-memory.ts';
import { redact } from './redact.ts';
import type { Secrets } from './secrets.ts';
import {
  type LiveRole,
  RoleConflictError,
  type RoleLock,
  type RoleLockLog,
  takeRoleLock,
} from './store/pg-role-lock.ts';
import { openEmbeddedStore, openPostgresStore, type SqlStore } from './store/store-sql.ts';

export interface Adapters {
  store: Store;
  bus: Bus;
  providers: Map<Channel, ChannelProvider & { close?(): Promise<void> }>;
  /** What the worker sends each leased delivery through: gates, rendering, the channel's providers. */
  dispatcher: Dispatcher;
  /** Names the destination of a delivery to a user-supplied URL, for the worker's per-destination limit. */
  destinations: DestinationResolver<DeliveryJob>;
  /** Per-API-key request limits; null when HERALD_RATE_LIMIT_RPS is unset. */
  rateLimiter: RateLimiter | null;
  /** Human-readable choices, for the start-up log. */
  description: { store: string; bus: string; rateLimit: string; email: string; warnings: string[] };
  /** Held while this process delivers in-app on PostgreSQL (src/store/pg-role-lock.ts); released by stop. */
  roleLock: RoleLock | null;
}

export interface WireOptions {
  /** A store the caller already opened (tests use a migrated in-memory PGlite). */
  preopened?: SqlStore;
  /**
   * What this process delivers in-app: with a gateway (its sockets must get every live frame), or
   * without one. Null: it delivers nothing (no worker role).
   */
  liveRole?: LiveRole | null;
  /** For the role lock's reports when its session is lost and taken again. */
  log?: RoleLockLog;
}

/** A start-up failure the operator fixes in the configuration; the message names the setting. */
export class StartupError extends Error {
  override name = 'StartupError';
}

export async function wireAdapters(config: Config, secrets: Secrets, options: WireOptions = {}): Promise<Adapters> {
  const warnings: string[] = [];
  const shownUrl = config.databaseUrl ? redact(config.databaseUrl, { asUrl: true }) : '';
  const store =
    options.preopened ??
    (config.databaseUrl
      ? await openPostgresStore(config.databaseUrl, config.pgPoolSize, {
          connectTimeoutMs: config.pgConnectTimeoutMs,
          statementTimeoutMs: config.pgStatementTimeoutMs,
        }).catch((e: unknown) => {
          throw databaseError(shownUrl, e);
        })
      : await openEmbeddedStore(join(config.dataDir, 'pgdata')));
  let roleLock: RoleLock | null = null;
  if (!options.preopened && config.databaseUrl && options.liveRole) {
    const log = options.log ?? { info() {}, warn() {}, error() {} };
    try {
      roleLock = await takeRoleLock(config.databaseUrl, options.liveRole, {
        connectTimeoutMs: config.pgConnectTimeoutMs,
        log,
      });
    } catch (e) {
      await store.close().catch(() => {});
      throw e instanceof RoleConflictError
        ? new StartupError(`DATABASE_URL ${shownUrl}: ${e.message}`)
        : databaseError(shownUrl, e);
    }
  }
  if (config.redisUrl) {
    warnings.push(
      'REDIS_URL is set, but this version has no Redis adapters yet: bus, presence and routing run in-process, ' +
        'and live notifications reach only the sockets of the process that delivers them',
    );
    if (config.rateLimit) {
      warnings.push('rate limits are kept per process: with several api processes each allows the full rate');
    }
  }
  const rateLimiter = config.rateLimit ? new MemoryRateLimiter(config.rateLimit) : null;
  const bus = new QueueTableBus();
  const providers = await buildProviders({
    webhookSecret: secrets.webhookSecret,
    webhookTimeoutMs: config.webhookTimeoutMs,
    egress: new EgressPolicy(config.egressAllow),
    smtp: config.smtp,
    // The worker's send budget is HERALD_WEBHOOK_TIMEOUT_MS: a Twilio request gets the same bound.
    twilio: config.twilio ? { ...config.twilio, timeoutMs: config.webhookTimeoutMs } : undefined,
    devices: store,
    // Web Push endpoints get the webhook's bound, within the worker's send budget.
    webpush: config.vapid ? { vapid: config.vapid, timeoutMs: config.webhookTimeoutMs } : undefined,
    // Like Twilio's, FCM and APNs requests get the worker's send budget (HERALD_WEBHOOK_TIMEOUT_MS).
    fcm: config.fcm ? { ...config.fcm, timeoutMs: config.webhookTimeoutMs } : undefined,
    apns: config.apns ? { ...config.apns, timeoutMs: config.webhookTimeoutMs } : undefined,
    users: store,
  });
  // Checked in this order before a delivery is sent (src/core/dispatch.ts).
  const gates: SendGate[] = [];
  const renderer: ContentRenderer | null = null;
  const dispatcher = new Dispatcher(providers, gates, renderer);
  return {
    store,
    bus,
    providers,
    dispatcher,
    destinations: destinationResolver(store),
    rateLimiter,
    roleLock,
    description: {
      store: config.databaseUrl ? `postgres (${shownUrl})` : `pglite (${join(config.dataDir, 'pgdata')})`,
      bus: bus.kind,
      rateLimit: config.rateLimit
        ? `${rateLimiter?.kind}: ${config.rateLimit.rps}/s per API key, bursts of ${config.rateLimit.burst}`
        : 'none',
      email: config.smtp
        ? `smtp (${redact(config.smtp.url, { asUrl: true })}, from ${config.smtp.from})`
        : 'none (HERALD_SMTP_URL is unset: email deliveries are skipped)',
      warnings,
    },
  };
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** "DATABASE_URL postgres://me:***@db/x is unreachable: connect ECONNREFUSED …". */
function databaseError(shownUrl: string, e: unknown): StartupError {
  const err = e as {
    code?: string;
    message?: string;
    reason?: string;
    errors?: { message?: string; code?: string }[];
  };
  // `reason`: the store's own connect error, whose message names DATABASE_URL already. Several
  // addresses tried (localhost → ::1 and 127.0.0.1): an AggregateError with no message of its own.
  const reason = err?.reason || err?.message || err?.errors?.map((x) => x.message).join('; ') || String(e);
  const code = err?.code ?? err?.errors?.[0]?.code;
  const unreachable =
    (code !== undefined && UNREACHABLE.has(code)) || /timeout|timed out|terminated unexpectedly/i.test(reason);
  return new StartupError(
    unreachable
      ? `DATABASE_URL ${shownUrl} is unreachable: ${reason}`
      : `DATABASE_URL ${shownUrl} cannot be used: ${reason}`,
    { cause: e },
  );
}
