/**
 * A running Herald: wires adapters, then starts the roles — api (HTTP + ingest), gateway
 * (WebSocket real-time delivery), worker (lane workers), scheduler (reclaim, reconcile, purge). `stop()` shuts down in the order that loses
 * nothing: stop taking requests, commit what was accepted, finish and record held deliveries,
 * then close the bus and the store.
 *
 * Roles that would silently lose live notifications are refused at start (live frames do not
 * travel between processes yet): a gateway without the worker role, and on PostgreSQL the
 * combinations src/store/pg-role-lock.ts describes. On the embedded store, roles this process
 * leaves out run nowhere, which is warned about. Repeated failures are logged through one
 * LogThrottle (first in full, then counted).
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { Auth } from './api/auth.ts';
import { buildServer } from './api/server.ts';
import type { Config } from './config.ts';
import { DigestRunner } from './core/digest-runner.ts';
import { HeraldEmitter } from './core/events.ts';
import { FanoutRunner } from './core/fanout.ts';
import { Ingest } from './core/ingest.ts';
import { Maintenance } from './core/maintenance.ts';
import type { Clock } from './core/ports.ts';
import type { RoutedFrame } from './core/ports-realtime.ts';
import { notificationFrame } from './core/realtime-protocol.ts';
import type { InboxItem } from './core/types.ts';
import { UnsubscribeTokens } from './core/unsubscribe-token.ts';
import { DeliveryWorker } from './core/worker.ts';
import { LogThrottle } from './log-throttle.ts';
import { Gateway } from './realtime/gateway.ts';
import { resolveSecrets, type Secrets } from './secrets.ts';
import type { SqlStore } from './store/store-sql.ts';
import { type Adapters, StartupError, wireAdapters } from './wiring.ts';

/** Digests one worker process sends at once (src/core/digest-runner.ts). */
const DIGEST_CONCURRENCY = 16;

/** Recipients up to which an in-app notification is delivered as it is accepted (Ingest `inAppUpTo`). */
const INLINE_IN_APP_RECIPIENTS = 100;

export const ROLES = ['api', 'gateway', 'worker', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

export interface Herald {
  config: Config;
  roles: readonly Role[];
  secrets: Secrets;
  adapters: Adapters;
  events: HeraldEmitter;
  logger: Logger;
  /** Base URL of the HTTP server (every process has one: health, readiness, metrics), reachable from this machine. */
  url: string;
  /** The address the server is actually bound to; `allInterfaces` for 0.0.0.0 and ::. */
  listening: { address: string; port: number; family: string; allInterfaces: boolean };
  server: FastifyInstance;
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
  /** "Now" of the decider and its gates (tests: quiet hours on a given night); default the system clock. */
  clock?: Clock;
}

export async function startHerald(config: Config, options: StartOptions = {}): Promise<Herald> {
  const roles = new Set(options.roles ?? ROLES);
  checkRoles(roles, config);
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'herald' } });
  const secrets = resolveSecrets(config);
  const events = new HeraldEmitter();
  const adapters = await wireAdapters(config, secrets, {
    events,
    ...(options.store ? { preopened: options.store } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    liveRole: roles.has('worker') ? (roles.has('gateway') ? 'gateway+worker' : 'worker-only') : null,
    log: logger,
  });
  for (const w of [...adapters.description.warnings, ...roleWarnings(config, roles)]) logger.warn(w);
  // Every failure that repeats while a dependency is down (claims, maintenance, requests, sockets).
  const failures = new LogThrottle(logger);
  failures.start();
  const { store, bus, providers } = adapters;

  const ingest = new Ingest(store, bus, events, failures, {
    maxPending: config.ingestMaxPending,
    parallel: Math.max(1, Math.min(8, store.parallelism)),
    // Small in-app notifications are delivered in the accepting transaction where their live frames
    // reach every socket: where this process delivers (its worker pushes to its own sockets), and in
    // the distributed mode anywhere (live frames travel through Redis). Elsewhere they wait for a
    // worker like everything else.
    inAppUpTo: roles.has('worker') || adapters.redis ? INLINE_IN_APP_RECIPIENTS : 0,
    // In-app deliveries of categories with a template go to a worker, which renders them.
    templates: adapters.templates,
    // A notification without a ttl (its own or its category's) expires this long after it is due.
    retentionMs: config.retentionMs,
    fanoutOnReadAbove: config.fanoutOnReadAbove,
    // Category policies (defaults, ttl) and the decider (ADR 13).
    policies: adapters.policies,
    decider: adapters.decider,
  });
  const worker = roles.has('worker')
    ? new DeliveryWorker(
        store,
        bus,
        adapters.dispatcher,
        events,
        failures,
        {
          laneConcurrency: config.laneConcurrency,
          leaseMs: config.leaseMs,
          pollMs: config.pollMs,
          retry: config.retry,
          sendBudgetMs: adapters.sendBudgetMs,
          // One slow receiver holds at most this many of a lane's slots (src/core/destination-limit.ts).
          destinations: { max: config.webhookMaxPerDestination, resolve: adapters.destinations },
          // A group's window is its category's digest window where it has one (src/core/aggregation.ts).
          groupWindow: async (category) => {
            const digest = (await adapters.policies.policyOf(category))?.digest;
            return digest && 'windowMs' in digest ? digest.windowMs : undefined;
          },
        },
        store.parallelism,
      )
    : null;
  // Digests whose window has ended: taken, sent and recorded where the lanes run.
  const digests = roles.has('worker')
    ? new DigestRunner(store, adapters.dispatcher, events, failures, {
        concurrency: DIGEST_CONCURRENCY,
        leaseMs: config.leaseMs,
        pollMs: Math.max(config.pollMs, 250),
        retry: config.retry,
      })
    : null;
  const maintenance = roles.has('scheduler')
    ? new Maintenance(store, bus, events, failures, {
        leaseMs: config.leaseMs,
        node: adapters.node,
        overdueMs: config.reconcileOverdueMs,
        retentionMs: config.retentionMs,
        retentionEveryMs: config.retentionEveryMs,
      })
    : null;

  const auth = new Auth(secrets.apiKeys, secrets.jwtSecret, config.maxTokenTtl);
  const { presence, live } = adapters;
  const gateway = roles.has('gateway')
    ? new Gateway(store, presence, live, auth, events, failures, {
        maxBufferedBytes: config.wsMaxBufferBytes,
        heartbeatMs: config.wsHeartbeatMs,
        maxSocketsPerUser: config.maxSocketsPerUser,
        node: adapters.node,
        // Fan-out on read: the subscribers connected here get a topic notification's entry now,
        // wherever it was accepted (one statement per 1,000 of them).
        topicAccepted: () => {
          store.topicItemAccepted();
          const users = gateway?.connectedUsers() ?? [];
          void (async () => {
            for (let i = 0; i < users.length; i += 1_000) await store.materializeTopics(users.slice(i, i + 1_000));
          })().catch((error: unknown) => failures.warn({ err: error }, 'fan-out on read: live entries not pushed'));
        },
      })
    : null;
  // Committed in-app entries and new unread counts, wherever they happen here, go to the gateways
  // that hold their users' sockets (this process's, or others' through LiveFrames).
  events.on('inbox:entries', (entries) => {
    void live.publish(entries.map((e) => new LazyFrame(e.userId, e.item.seq, e.item)));
  });
  events.on('inbox:unread', ({ userId, unreadCount }) => {
    void live.publish([{ userId, seq: null, frame: Buffer.from(JSON.stringify({ type: 'unread', unreadCount })) }]);
  });
  await gateway?.start();

  // Topic fan-out runs where deliveries are made, one job at a time per process, giving way to
  // critical and high work (src/core/fanout.ts).
  const fanout = worker
    ? new FanoutRunner(store, bus, events, failures, {
        leaseMs: config.leaseMs,
        pollMs: config.pollMs,
        maxPage: config.fanoutPage,
        // On the embedded store every statement waits for a running page: keep pages as short as a
        // bulk take. On PostgreSQL a page blocks no other statement; longer pages cost fewer commits.
        pageBudgetMs: store.parallelism > 1 ? 200 : 25,
        templates: adapters.templates,
        liveUsers: () => gateway?.connectedUsers() ?? [],
        // In the distributed mode sockets are on any gateway: presence says which subscribers have one.
        ...(adapters.redis
          ? { liveAmong: async (users: readonly string[]) => [...(await presence.nodesOf(users)).keys()] }
          : {}),
        busy: () => worker.inFlight('critical') + worker.inFlight('high') > 0,
        exclusive: store.exclusive,
        // Each page is decided by ingest's decider (ADR 13), its decisions stored by the page.
        ...(ingest.decider ? { decider: ingest.decider } : {}),
      })
    : null;

  // Fan-out on read: entries a read appends go to the user's sockets; a topic notification accepted
  // here is signalled to every gateway (this process's too), whose connected subscribers read it.
  if (gateway) store.onTopicEntries = (entries) => events.emit('inbox:entries', entries);
  events.on('notification:accepted', (n) => {
    if (n.inAppOnRead) void live.topicAccepted();
  });

  // Every process serves /healthz, /readyz and /metrics on PORT, whatever its roles (API.md); the
  // producer and inbox API only with the api role.
  const server = await buildServer(
    {
      config,
      store,
      templates: adapters.templates,
      policies: adapters.policies,
      decisionContexts: adapters.decisionContexts,
      bus,
      ingest,
      events,
      auth,
      presence,
      live,
      readiness: adapters.readiness,
      rateLimiter: adapters.rateLimiter,
      routes: adapters.routes,
      unsubscribe: { tokens: new UnsubscribeTokens(secrets.jwtSecret), isRequired: adapters.isRequired },
      logger,
      failureLog: failures,
    },
    { api: roles.has('api') },
  );
  gateway?.attach(server.server);
  await server.listen({ port: config.port, host: config.host });
  const listening = boundAddress(server);
  const url = reachableUrl(listening);
  // Expired leases of a previous run come back before workers start claiming; on a store that only
  // this process can use, every lease does: whoever held it has died.
  if (maintenance) {
    const reclaimed = await maintenance.reclaim({ unexpired: store.exclusive });
    if (reclaimed) logger.info({ reclaimed }, 'deliveries a previous run left in flight are back in the queue');
    maintenance.start();
  }
  worker?.start();
  fanout?.start();
  digests?.start();
  logger.info(
    {
      url,
      listening: `${listening.family === 'IPv6' ? `[${listening.address}]` : listening.address}:${listening.port}`,
      roles: [...roles],
      store: adapters.description.store,
      bus: adapters.description.bus,
      rateLimit: adapters.description.rateLimit,
      email: adapters.description.email,
    },
    'herald started',
  );

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await gateway?.close();
      // Requests in flight may finish, for SHUTDOWN_GRACE_MS at most (a client sending slowly
      // cannot hold the process); a request arriving meanwhile on an open connection gets 503.
      const cut = setTimeout(() => server.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await server.close();
      clearTimeout(cut);
      await ingest.drain();
      await fanout?.stop();
      await worker?.stop();
      await digests?.stop();
      await maintenance?.stop();
      for (const p of providers) await p.close?.();
      await adapters.rateLimiter?.close();
      await live.close();
      await presence.close();
      await bus.close();
      await adapters.redis?.quit().catch(() => adapters.redis?.disconnect());
      await store.close();
      await adapters.roleLock?.release();
      failures.stop();
      logger.info('herald stopped');
    })();
    return stopping;
  };
  return { config, roles: [...roles], secrets, adapters, events, logger, url, listening, server, gateway, stop };
}

/**
 * A frame serialized when first read, and once: only entries some gateway holds the user of are
 * ever serialized (most entries of a busy ingest have nobody connected).
 */
class LazyFrame implements RoutedFrame {
  private encoded: Buffer | undefined;
  constructor(
    readonly userId: string,
    readonly seq: number,
    private readonly item: InboxItem,
  ) {}
  get frame(): Buffer {
    this.encoded ??= notificationFrame(this.item);
    return this.encoded;
  }
}

/**
 * Refuses the role sets that lose live notifications whatever else runs: a gateway whose sockets no
 * worker can reach — one without the worker role, unless live frames travel between processes
 * (REDIS_URL, with DATABASE_URL: the distributed mode).
 */
function checkRoles(roles: ReadonlySet<Role>, config: Config): void {
  if (roles.size === 0) throw new StartupError(`--role: give at least one of ${ROLES.join(', ')}`);
  if (roles.has('gateway') && !roles.has('worker') && !(config.redisUrl && config.databaseUrl)) {
    throw new StartupError(
      '--role gateway without worker: nothing would push live notifications to this process’s sockets ' +
        '(without REDIS_URL, a worker pushes only to the sockets of its own process). Run gateway and worker ' +
        'in the same process (the default runs every role), or set DATABASE_URL and REDIS_URL (the distributed ' +
        'mode: live frames travel between processes) and run gateways and workers where you like.',
    );
  }
}

/** On the embedded store no other process can share the data: roles left out here run nowhere. */
function roleWarnings(config: Config, roles: ReadonlySet<Role>): string[] {
  if (config.databaseUrl) return [];
  const missing = ROLES.filter((r) => !roles.has(r));
  if (!missing.length) return [];
  const effect: Record<Role, string> = {
    api: 'nothing can be posted',
    gateway: 'no WebSocket clients are served',
    worker: 'nothing is delivered',
    scheduler: 'deliveries held by a send that failed to record are not reclaimed until the next start',
  };
  return [
    `the embedded store belongs to this one process, so the roles it leaves out run nowhere: ` +
      `${missing.map((r) => `${r} (${effect[r]})`).join('; ')}. Run every role, or use DATABASE_URL to spread them.`,
  ];
}

function boundAddress(server: FastifyInstance): NonNullable<Herald['listening']> {
  const a = server.server.address() as AddressInfo;
  return {
    address: a.address,
    port: a.port,
    family: a.family,
    allInterfaces: a.address === '0.0.0.0' || a.address === '::',
  };
}

/** A URL that reaches the server from this machine: loopback when it is bound to every interface. */
function reachableUrl(l: NonNullable<Herald['listening']>): string {
  if (l.allInterfaces) return `http://127.0.0.1:${l.port}`;
  return `http://${l.family === 'IPv6' ? `[${l.address}]` : l.address}:${l.port}`;
}
