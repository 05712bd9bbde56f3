/**
 * Connections to Redis for the distributed adapters (bus, presence, live frames, rate limits).
 * REDIS_URL is one `redis://` (or `rediss://`) URL for a single node, or several separated by commas
 * for a Redis Cluster (any of its nodes; the client learns the rest). Commands issued in the same
 * tick travel in one pipeline (auto-pipelining), per cluster node.
 *
 * Every key an adapter uses carries a hash tag (`{…}`) so that the keys one command or script
 * touches together are in one cluster slot; `prefix` (tests) goes before the tag.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

export interface RedisConnectOptions {
  /** Started with `lazyConnect` and connected by the caller (a subscriber). Default false. */
  lazy?: boolean;
  /** Name shown by CLIENT LIST. */
  name?: string;
}

/** True when REDIS_URL names several nodes (a cluster). */
export function isClusterUrl(url: string): boolean {
  return url.includes(',');
}

export function connectRedis(url: string, options: RedisConnectOptions = {}): RedisClient {
  const common: RedisOptions = {
    enableAutoPipelining: true,
    lazyConnect: options.lazy ?? false,
    ...(options.name ? { connectionName: options.name } : {}),
    // A command waits through a short outage (reconnects every ≤ 1 s) and fails after two retries,
    // so a caller's own retry loop (the worker's poll, the reconciler) decides what happens next.
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => Math.min(100 * times, 1_000),
  };
  if (!isClusterUrl(url)) return new Redis(url, common);
  const seeds = url.split(',').map((u) => {
    const parsed = new URL(u.trim());
    return { host: parsed.hostname, port: Number(parsed.port || 6379) };
  });
  const first = new URL(url.split(',')[0]?.trim() ?? '');
  return new Cluster(seeds, {
    enableAutoPipelining: true,
    lazyConnect: options.lazy ?? false,
    clusterRetryStrategy: (times) => Math.min(100 * times, 1_000),
    redisOptions: {
      ...common,
      ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
      ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
      ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
    },
  });
}
