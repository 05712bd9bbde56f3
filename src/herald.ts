/**
 * A running Herald: wires adapters, then starts the roles — api (HTTP + ingest), gateway
 * (WebSocket real-time delivery), worker (lane workers), scheduler (reclaim, reconcile, purge). `stop()` shuts down in the order that loses
 * nothing: stop taking requests, commit what was accepted, finish and record held deliveries,
 * then close the bus and the store.
 */
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { Auth } from './api/auth.ts';
import { buildServer } from './api/server.ts';
import type { Config } from './config.ts';
import { HeraldEmitter } from './core/events.ts';
import { Ingest } from './core/ingest.ts';
import { Maintenance } from './core/maintenance.ts';
import { DeliveryWorker } from './core/worker.ts';
import { Gateway } from './realtime/gateway.ts';
import { MemoryPresence } from './realtime/presence-memory.ts';
import { resolveSecrets, type Secrets } from './secrets.ts';
import type { SqlStore } from './store/store-sql.ts';
import { type Adapters, wireAdapters } from './wiring.ts';

/** Recipients up to which an in-app notification is delivered as it is accepted (Ingest `inAppUpTo`). */
const INLINE_IN_APP_RECIPIENTS = 100;

export const ROLES = ['api', 'gateway', 'worker', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

export interface Herald {
  config: Config;
  secrets: Secrets;
  adapters: Adapters;
  events: HeraldEmitter;
  logger: Logger;
  /** Base URL of the HTTP server when the api role runs. */
  url: string | null;
  server: FastifyInstance | null;
  gateway: Gateway | null;
  stop(): Promise<void>;
}

/** How long requests in flight at shutdown may take to finish before their connections are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

export interface StartOptions {
  /** Default: every role. */
  roles?: readonly Role[];
  /** Default: pino on stdout at HERALD_LOG_LEVEL. */
  logger?: Logger;
  /** An already opened store instead of the configured one (tests). */
  store?: SqlStore;
}

export async function startHerald(config: Config, options: StartOptions = {}): Promise<Herald> {
  const roles = new Set(options.roles ?? ROLES);
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'herald' } });
  const secrets = resolveSecrets(config);
  const adapters = await wireAdapters(config, secrets, options.store);
  for (const w of adapters.description.warnings) logger.warn(w);
  const { store, bus, providers } = adapters;
  const events = new HeraldEmitter();

  const ingest = new Ingest(store, bus, events, logger, {
    maxPending: config.ingestMaxPending,
    parallel: Math.max(1, Math.min(8, store.parallelism)),
    // Small in-app notifications are delivered in the accepting transaction where this process
    // delivers (and pushes to its sockets); elsewhere they wait for a worker like everything else.
    inAppUpTo: roles.has('worker') ? INLINE_IN_APP_RECIPIENTS : 0,
  });
  const worker = roles.has('worker')
    ? new DeliveryWorker(
        store,
        bus,
        providers,
        events,
        logger,
        {
          laneConcurrency: config.laneConcurrency,
          leaseMs: config.leaseMs,
          pollMs: config.pollMs,
          retry: config.retry,
          sendBudgetMs: config.webhookTimeoutMs,
        },
        store.parallelism,
      )
    : null;
  const maintenance = roles.has('scheduler')
    ? new Maintenance(store, bus, events, logger, { leaseMs: config.leaseMs })
    : null;

  const auth = new Auth(secrets.apiKeys, secrets.jwtSecret, config.maxTokenTtl);
  const presence = new MemoryPresence();
  const gateway = roles.has('gateway')
    ? new Gateway(store, presence, auth, events, logger, {
        maxBufferedBytes: config.wsMaxBufferBytes,
        heartbeatMs: config.wsHeartbeatMs,
        maxSocketsPerUser: config.maxSocketsPerUser,
      })
    : null;

  let server: FastifyInstance | null = null;
  let url: string | null = null;
  if (roles.has('api') || gateway) {
    server = await buildServer(
      { config, store, bus, ingest, events, auth, presence, logger },
      { api: roles.has('api') },
    );
    gateway?.attach(server.server);
    url = await server.listen({ port: config.port, host: config.host });
    url = url.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
  }
  // Expired leases of a previous run come back before workers start claiming; on a store that only
  // this process can use, every lease does: whoever held it has died.
  if (maintenance) {
    const reclaimed = await maintenance.reclaim({ unexpired: store.exclusive });
    if (reclaimed) logger.info({ reclaimed }, 'deliveries a previous run left in flight are back in the queue');
    maintenance.start();
  }
  worker?.start();
  logger.info(
    { url, roles: [...roles], store: adapters.description.store, bus: adapters.description.bus },
    'herald started',
  );

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await gateway?.close();
      // Requests in flight may finish, for SHUTDOWN_GRACE_MS at most (a client sending slowly
      // cannot hold the process); a request arriving meanwhile on an open connection gets 503.
      const cut = setTimeout(() => server?.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await server?.close();
      clearTimeout(cut);
      await ingest.drain();
      await worker?.stop();
      await maintenance?.stop();
      for (const p of providers.values()) await p.close?.();
      await bus.close();
      await store.close();
      logger.info('herald stopped');
    })();
    return stopping;
  };
  return { config, secrets, adapters, events, logger, url, server, gateway, stop };
}
