/**
 * The one place that reads the configuration and chooses adapters: store, bus, providers and the
 * rate limiter. Nothing else looks at DATABASE_URL or REDIS_URL. What it reports for people (the
 * description, warnings, errors) shows URLs through `redact`: never a password.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { QueueTableBus } from './bus/bus-queue-table.ts';
import { RedisStreamsBus } from './bus/bus-redis-streams.ts';
import { RedisWakeups } from './bus/bus-wake-redis.ts';
import { destinationResolver } from './channels/destinations.ts';
import { EgressPolicy } from './channels/egress-policy.ts';
import { buildProviders, buildRoutes, type Provider } from './channels/registry.ts';
import type { Config } from './config.ts';
import { CategoryPolicyCache } from './core/category-policy-cache.ts';
import { PolicyDecider } from './core/decider-policy.ts';
import { DecisionContextCache } from './core/decision-contexts.ts';
import { CapGate, ExpiryGate } from './core/decision-gates.ts';
import type { DestinationResolver } from './core/destination-limit.ts';
import { type ContentRenderer, Dispatcher, type SendGate } from './core/dispatch.ts';
import type { HeraldEmitter } from './core/events.ts';
import type { Clock, Store } from './core/ports.ts';
import type { Bus } from './core/ports-bus.ts';
import type { RateLimiter } from './core/ports-channels.ts';
import type { LiveFrames, Presence } from './core/ports-realtime.ts';
import { PreferenceGate } from './core/preference-gate.ts';
import type { IsRequired } from './core/preferences.ts';
import type { ProviderRoute } from './core/provider-route.ts';
import { StepConditionGate } from './core/step-gate.ts';
import { TemplateCache } from './core/template-cache.ts';
import { TemplateContentRenderer } from './core/template-content.ts';
import type { Channel, DeliveryJob } from './core/types.ts';
import { UnsubscribeLinks } from './core/unsubscribe-links.ts';
import { UnsubscribeTokens } from './core/unsubscribe-token.ts';
import { leaseMarginMs } from './core/worker.ts';
import { MemoryRateLimiter } from './ratelimit/rate-limiter-memory.ts';
import { RedisRateLimiter } from './ratelimit/rate-limiter-redis.ts';
import { MemoryLiveFrames } from './realtime/live-memory.ts';
import { RedisLiveFrames } from './realtime/live-redis.ts';
import { MemoryPresence } from './realtime/presence-memory.ts';
import { RedisPresence } from './realtime/presence-redis.ts';
import { redact } from './redact.ts';
import { connectRedis, type RedisClient } from './redis-connection.ts';
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
  /** Who holds which user's sockets, per gateway process (node). */
  presence: Presence;
  /** Live frames from where they are committed to the gateways that hold their users. */
  live: LiveFrames;
  /** The distributed mode's Redis connection (closed by stop, after everything that uses it); null without REDIS_URL. */
  redis: RedisClient | null;
  /** What /readyz checks besides the store (Redis, in the distributed mode). */
  readiness: Record<string, () => Promise<unknown>>;
  /** This process's name among Herald's processes (presence, live frames, leases): host, pid and a random part. */
  node: string;
  /** Every configured provider (to close at stop). */
  providers: Provider[];
  /** Each channel's providers in fallback order, with their breakers and rate limits. */
  routes: Map<Channel, ProviderRoute>;
  /** What the worker sends each leased delivery through: gates, rendering, the channel's routes. */
  dispatcher: Dispatcher;
  /** The longest a worker's send may take: a provider's timeout, plus the wait for a rate limit. */
  sendBudgetMs: number;
  /** Whether a category ignores opt-outs: its policy's `required` (through `policies`). */
  isRequired: IsRequired;
  /** Category policies, cached (src/core/category-policy-cache.ts): ingest, decider, gates and the API. */
  policies: CategoryPolicyCache;
  /** Recipients' preferences and time zones for the decider; the API forgets a user it writes. */
  decisionContexts: DecisionContextCache;
  /** Decides per recipient × channel at ingest (ADR 13). */
  decider: PolicyDecider;
  /**
   * Templates per category, compiled and cached (src/core/template-cache.ts): the renderer reads them,
   * ingest asks which categories have one, and the templates API writes through it.
   */
  templates: TemplateCache;
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
  /** Where routes report each provider's attempts (metrics). */
  events?: HeraldEmitter;
  /** "Now" of the decider and its gates (tests); default the system clock. */
  clock?: Clock;
}

/**
 * Connects to REDIS_URL and waits until it answers (a start-up that cannot reach Redis fails, naming
 * the setting, as one that cannot reach PostgreSQL does); closes `store` when it gives up.
 */
async function openRedis(url: string, store: Store, log?: RoleLockLog): Promise<RedisClient> {
  const shown = url
    .split(',')
    .map((u) => redact(u.trim(), { asUrl: true }))
    .join(',');
  const client = connectRedis(url, { name: 'herald' });
  // ioredis reports every failed reconnect: logged once per outage, and once when it is back.
  let down = false;
  client.on('error', (err: unknown) => {
    if (down) return;
    down = true;
    log?.warn({ err: String(err) }, `REDIS_URL ${shown}: connection lost; retrying every second`);
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    log?.info({}, `REDIS_URL ${shown}: connected again`);
  });
  try {
    await Promise.race([
      client.ping(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 10 s')), 10_000).unref()),
    ]);
    return client;
  } catch (e) {
    client.disconnect();
    await store.close().catch(() => {});
    throw new StartupError(`REDIS_URL ${shown} is unreachable: ${(e as Error).message}`, { cause: e });
  }
}

/** A start-up failure the operator fixes in the configuration; the message names the setting. */
export class StartupError extends Error {
  override name = 'StartupError';
}

export async function wireAdapters(config: Config, secrets: Secrets, options: WireOptions = {}): Promise<Adapters> {
  const warnings: string[] = [];
  if (config.bus === 'redis-streams' && !config.redisUrl) {
    throw new StartupError(
      'HERALD_BUS=redis-streams needs REDIS_URL (and DATABASE_URL): set both, or unset HERALD_BUS.',
    );
  }
  if (config.redisUrl && !config.databaseUrl && !options.preopened) {
    throw new StartupError(
      'REDIS_URL is set without DATABASE_URL: the embedded store belongs to one process, so there is nothing ' +
        'for Redis to share. Set DATABASE_URL (PostgreSQL) as well for the distributed mode, or unset REDIS_URL.',
    );
  }
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
  // Without live frames between processes, which processes may deliver in-app is limited
  // (src/store/pg-role-lock.ts); with them (REDIS_URL) any may.
  if (!options.preopened && config.databaseUrl && !config.redisUrl && options.liveRole) {
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
  // The distributed mode: presence, live frames and rate limits shared through Redis.
  const redis = config.redisUrl ? await openRedis(config.redisUrl, store, options.log) : null;
  // With Redis, API-key limits and provider paces hold across processes (ADR 18); a take that Redis
  // does not answer in time is decided in this process, and the outage is logged once.
  const limitsUnavailable = (err: unknown) =>
    options.log?.warn({ err }, 'rate limits: Redis is unreachable; each process keeps them alone until it is back');
  const rateLimiter = config.rateLimit
    ? redis
      ? new RedisRateLimiter({ client: redis, ...config.rateLimit, onUnavailable: limitsUnavailable })
      : new MemoryRateLimiter(config.rateLimit)
    : null;
  const node = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  // The distributed mode's bus: the deliveries table with wake-ups through Redis (the default, ADR
  // 17), or Redis Streams (HERALD_BUS=redis-streams).
  let bus: Bus;
  if (redis && config.bus === 'redis-streams') {
    bus = new RedisStreamsBus(redis, { consumer: node, visibilityMs: config.leaseMs, maxLength: config.busMaxLength });
  } else {
    const queue = new QueueTableBus(redis ? new RedisWakeups(redis) : null);
    await queue.start();
    bus = queue;
  }
  // A gateway node counts for two heartbeats after its last one: with the default 25 s, the sockets
  // of a gateway that died are forgotten within 50 s (API.md: within 60 s of a close).
  const presenceTtlMs = 2 * config.wsHeartbeatMs;
  const presence = redis
    ? new RedisPresence(redis, { ttlMs: presenceTtlMs })
    : new MemoryPresence({ ttlMs: presenceTtlMs });
  const live = redis ? new RedisLiveFrames(redis, presence) : new MemoryLiveFrames();
  // A required category (its policy says so) ignores opt-outs and carries no unsubscribe link.
  const policies = new CategoryPolicyCache(store);
  const isRequired = policies.isRequired;
  const decisionContexts = new DecisionContextCache(store);
  const decider = new PolicyDecider(policies, decisionContexts, options.clock);
  const unsubscribeLinks = config.publicUrl
    ? new UnsubscribeLinks(config.publicUrl, new UnsubscribeTokens(secrets.jwtSecret), isRequired)
    : null;
  if (config.smtp && !config.publicUrl) {
    warnings.push(
      'HERALD_PUBLIC_URL is unset: emails carry no List-Unsubscribe link (RFC 8058), which large mailbox ' +
        'providers expect of bulk mail; set it to the https:// address users reach Herald at',
    );
  }
  if (config.smtp && config.publicUrl?.startsWith('http://')) {
    warnings.push(
      'HERALD_PUBLIC_URL is http://: mailbox providers honour one-click unsubscribe links only over https://',
    );
  }
  const built = await buildProviders(
    {
      webhookSecret: secrets.webhookSecret,
      webhookTimeoutMs: config.webhookTimeoutMs,
      egress: new EgressPolicy(config.egressAllow),
      smtp: config.smtp,
      listUnsubscribe: unsubscribeLinks ? (job) => unsubscribeLinks.linkFor(job) : undefined,
      // The worker's send budget is HERALD_WEBHOOK_TIMEOUT_MS: a Twilio request gets the same bound.
      twilio: config.twilio ? { ...config.twilio, timeoutMs: config.webhookTimeoutMs } : undefined,
      devices: store,
      // Web Push endpoints get the webhook's bound, within the worker's send budget.
      webpush: config.vapid ? { vapid: config.vapid, timeoutMs: config.webhookTimeoutMs } : undefined,
      // Like Twilio's, FCM and APNs requests get the worker's send budget (HERALD_WEBHOOK_TIMEOUT_MS).
      fcm: config.fcm ? { ...config.fcm, timeoutMs: config.webhookTimeoutMs } : undefined,
      apns: config.apns ? { ...config.apns, timeoutMs: config.webhookTimeoutMs } : undefined,
      users: store,
      smtpTimeoutMs: config.smtpTimeoutMs,
    },
    config.providersFile,
  );
  const longestTimeout = Math.max(...built.map((b) => b.timeoutMs));
  // A send waits for a provider's rate limit at most this long, and only as long as the lease leaves
  // room for the send after the wait.
  const maxWaitMs = Math.max(
    0,
    Math.min(PACE_WAIT_MS, config.leaseMs - 2 * leaseMarginMs(config.leaseMs) - longestTimeout),
  );
  const file = config.providersFile;
  const anyPace = [...(file?.extra ?? []), ...(file?.tuning.values() ?? [])].some((t) => t.rateLimit);
  const sendBudgetMs = longestTimeout + (anyPace ? maxWaitMs : 0);
  const events = options.events;
  const routes = buildRoutes(
    built,
    config.providersFile,
    {
      maxWaitMs,
      budgetMs: sendBudgetMs,
      ...(events ? { observe: (a) => events.emit('provider:attempt', a) } : {}),
    },
    redis
      ? {
          paceLimiter: (pace) =>
            new RedisRateLimiter({
              client: redis,
              rps: pace.perSecond,
              burst: pace.burst,
              onUnavailable: limitsUnavailable,
            }),
        }
      : {},
  );
  // Checked in this order before a delivery is sent (src/core/dispatch.ts).
  const gates: SendGate[] = [
    new ExpiryGate(store, options.clock),
    new StepConditionGate(store),
    new PreferenceGate(store, isRequired),
    // Last: a send is counted against a cap only once nothing else stops it.
    new CapGate(policies, store, options.clock),
  ];
  const templates = new TemplateCache(store);
  const renderer: ContentRenderer | null = new TemplateContentRenderer(templates);
  const dispatcher = new Dispatcher(routes, gates, renderer);
  return {
    store,
    bus,
    presence,
    live,
    readiness: redis ? { Redis: () => redis.ping() } : {},
    redis,
    node,
    providers: built.map((b) => b.provider),
    routes,
    dispatcher,
    sendBudgetMs,
    isRequired,
    policies,
    decisionContexts,
    decider,
    templates,
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

/** The longest a send waits for a provider's rate limit before the next provider is tried. */
const PACE_WAIT_MS = 5_000;

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
