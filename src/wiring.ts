/**
 * The one place that reads the configuration and chooses adapters: store, bus, providers and the
 * rate limiter. Nothing else looks at DATABASE_URL or REDIS_URL.
 */
import { join } from 'node:path';
import { QueueTableBus } from './bus/bus-queue-table.ts';
import { EgressPolicy } from './channels/egress-policy.ts';
import { buildProviders } from './channels/registry.ts';
import type { Config } from './config.ts';
import type { Bus, ChannelProvider, RateLimiter, Store } from './core/ports.ts';
import type { Channel } from './core/types.ts';
import { MemoryRateLimiter } from './ratelimit/rate-limiter-memory.ts';
import type { Secrets } from './secrets.ts';
import { openEmbeddedStore, openPostgresStore, type SqlStore } from './store/store-sql.ts';

export interface Adapters {
  store: Store;
  bus: Bus;
  providers: Map<Channel, ChannelProvider & { close?(): Promise<void> }>;
  /** Per-API-key request limits; null when HERALD_RATE_LIMIT_RPS is unset. */
  rateLimiter: RateLimiter | null;
  /** Human-readable choices, for the start-up log. */
  description: { store: string; bus: string; rateLimit: string; warnings: string[] };
}

/** `preopened`: a store the caller already opened (tests use a migrated in-memory PGlite). */
export async function wireAdapters(config: Config, secrets: Secrets, preopened?: SqlStore): Promise<Adapters> {
  const warnings: string[] = [];
  const store =
    preopened ??
    (config.databaseUrl
      ? await openPostgresStore(config.databaseUrl, config.pgPoolSize, {
          connectTimeoutMs: config.pgConnectTimeoutMs,
          statementTimeoutMs: config.pgStatementTimeoutMs,
        })
      : await openEmbeddedStore(join(config.dataDir, 'pgdata')));
  if (config.redisUrl) {
    warnings.push(
      'REDIS_URL is set, but this version has no Redis adapters yet: bus, presence and routing run in-process',
    );
    if (config.rateLimit) {
      warnings.push('rate limits are kept per process: with several api processes each allows the full rate');
    }
  }
  const rateLimiter = config.rateLimit ? new MemoryRateLimiter(config.rateLimit) : null;
  const bus = new QueueTableBus();
  const providers = buildProviders({
    webhookSecret: secrets.webhookSecret,
    webhookTimeoutMs: config.webhookTimeoutMs,
    egress: new EgressPolicy(config.egressAllow),
  });
  return {
    store,
    bus,
    providers,
    rateLimiter,
    description: {
      store: config.databaseUrl
        ? `postgres (${redact(config.databaseUrl)})`
        : `pglite (${join(config.dataDir, 'pgdata')})`,
      bus: bus.kind,
      rateLimit: config.rateLimit
        ? `${rateLimiter?.kind}: ${config.rateLimit.rps}/s per API key, bursts of ${config.rateLimit.burst}`
        : 'none',
      warnings,
    },
  };
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
