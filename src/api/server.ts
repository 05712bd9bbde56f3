/**
 * The HTTP server: JSON parsing that rejects bad encodings, one error shape for every failure
 * (`{"error": {"code", "message", "details"}}`, also for what Node refuses before a route runs: see
 * http-edge.ts), authentication per route, and the route modules.
 * Request validation is zod's (src/core/input.ts); route schemas exist for the OpenAPI document.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { HeraldError, isUnavailable, validationError } from '../core/errors.ts';
import type { HeraldEmitter } from '../core/events.ts';
import type { Ingest } from '../core/ingest.ts';
import type { CategoryPolicyStore, Store, TemplateStore } from '../core/ports.ts';
import type { Bus } from '../core/ports-bus.ts';
import type { RateLimiter } from '../core/ports-channels.ts';
import type { LiveFrames, Presence } from '../core/ports-realtime.ts';
import type { ProviderStatus } from '../core/provider-route.ts';
import type { Channel } from '../core/types.ts';
import type { Auth, Caller } from './auth.ts';
import { registerCors } from './cors.ts';
import { registerDocs } from './docs.ts';
import {
  capConnections,
  clientErrorHandler,
  httpServerOptions,
  refuseContentEncoding,
  refuseExpectation,
  requireHost,
} from './http-edge.ts';
import { Metrics } from './metrics.ts';
import { batchRoutes } from './routes-batch.ts';
import { categoryRoutes } from './routes-categories.ts';
import { deviceRoutes } from './routes-devices.ts';
import { notificationRoutes } from './routes-notifications.ts';
import { opsRoutes } from './routes-ops.ts';
import { preferenceRoutes } from './routes-preferences.ts';
import { realtimeRoutes } from './routes-realtime.ts';
import { retentionRoutes } from './routes-retention.ts';
import { templateRoutes } from './routes-templates.ts';
import { topicRoutes } from './routes-topics.ts';
import { type UnsubscribeDeps, unsubscribeRoutes } from './routes-unsubscribe.ts';
import { userRoutes } from './routes-users.ts';

export type AuthMode = 'none' | 'producer' | 'producer-or-user';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthMode;
  }
  interface FastifyRequest {
    /** Set by the onRequest hook on routes that require authentication. */
    caller: Caller;
  }
}

export interface ApiDeps {
  config: Config;
  store: Store;
  /** Where the templates API reads and writes (a cache that delivery reads too); default `store`. */
  templates?: TemplateStore;
  /** Where the categories API reads and writes (a cache that ingest reads too); default `store`. */
  policies?: CategoryPolicyStore;
  /** Told of every user whose preferences or profile the API writes (the decider's cache); default none. */
  decisionContexts?: { forget(userId: string): void };
  bus: Bus;
  ingest: Ingest;
  events: HeraldEmitter;
  auth: Auth;
  presence: Presence;
  /** Live frames from other processes (the gateway's `herald_realtime_frames_received_total`); absent: none. */
  live?: Pick<LiveFrames, 'received'>;
  /** Readiness checks beyond the store's (Redis, in the distributed mode): each throws when it cannot be used. */
  readiness?: Record<string, () => Promise<unknown>>;
  /** Per-API-key limits; null when `config.rateLimit` is unset (then nothing is limited). */
  rateLimiter: RateLimiter | null;
  logger: Logger;
  /** Unsubscribe tokens and category policies, for the one-click unsubscribe routes. */
  unsubscribe: UnsubscribeDeps;
  /** Where failed requests (5xx) are logged; default the request's logger. Herald passes a LogThrottle. */
  failureLog?: { error(obj: object, msg: string): void };
  /** Each channel's providers (GET /v1/providers, metrics); absent: none shown. */
  routes?: ReadonlyMap<Channel, { status(): ProviderStatus[] }>;
}

export interface ServerOptions {
  /** Register the producer and inbox API (the api role); otherwise only operations and /v1/realtime. */
  api: boolean;
}

export async function buildServer(deps: ApiDeps, options: ServerOptions = { api: true }): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.config.maxBodyBytes,
    // Requests that arrive while closing are answered 503 by the hook below, in Herald's shape.
    return503OnClosing: false,
    // On close, idle keep-alive connections are closed at once and requests in flight finish (a
    // POST being committed gets its 202); Herald.stop cuts what is still open after a grace period.
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 500 },
    // Headers and body within HERALD_REQUEST_TIMEOUT_MS, checked often enough to cut close to it;
    // what Node's parser refuses is answered in Herald's shape (http-edge.ts).
    requestTimeout: deps.config.requestTimeoutMs,
    http: httpServerOptions(deps.config.requestTimeoutMs),
    clientErrorHandler: clientErrorHandler(deps.logger, deps.config.requestTimeoutMs),
    // The router's own refusals (bad percent-encoding, a path parameter over maxParamLength) would
    // otherwise be answered in Fastify's shape, not Herald's.
    frameworkErrors: (error, _req, reply) => {
      const e =
        (error.statusCode ?? 500) < 500
          ? new HeraldError('HERALD_ERR_VALIDATION', `url: ${error.message}`, {
              cause: error,
              details: [{ field: 'url', message: error.message }],
            })
          : toHeraldError(error);
      void (reply as FastifyReply).status(e.status).send(e.toJSON());
    },
  });

  capConnections(app.server, deps.config.maxConnections, deps.logger);
  app.server.on('checkExpectation', refuseExpectation);

  // Validation is zod's; route schemas only document. Serialization is plain JSON.stringify.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  // JSON only: without this, Fastify's built-in text/plain parser would hand a string to the routes
  // (answered 400) where an unsupported media type must be 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    // JSON is UTF-8 (RFC 8259): a body declared in another charset is refused, not misread.
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      return done(
        new HeraldError('HERALD_ERR_UNSUPPORTED_MEDIA_TYPE', `charset=${charset}: JSON bodies must be UTF-8`),
        undefined,
      );
    }
    const buf = body as Buffer;
    if (buf.length === 0) return done(null, undefined);
    let text: string;
    try {
      text = UTF8.decode(buf);
    } catch {
      return done(new HeraldError('HERALD_ERR_INVALID_ENCODING', 'the body is not valid UTF-8'), undefined);
    }
    if (nestsDeeperThan(text, MAX_BODY_DEPTH)) {
      return done(
        validationError([{ field: '(body)', message: `nests deeper than ${MAX_BODY_DEPTH} levels` }]),
        undefined,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      return done(
        new HeraldError('HERALD_ERR_MALFORMED_JSON', `the body is not valid JSON: ${(e as Error).message}`),
        undefined,
      );
    }
    // A "__proto__" key would be dropped (or worse) by the first object copy: refuse it by name.
    // The walk runs only for bodies that could hold one (the name, or any \u escape).
    const proto = text.includes('__proto__') || text.includes('\\u') ? protoKeyPath(parsed) : null;
    if (proto !== null) {
      return done(validationError([{ field: proto, message: 'the key __proto__ is not allowed' }]), undefined);
    }
    done(null, parsed);
  });

  // Every route's path as a pattern, so that a known path asked with another method is answered
  // 405 with the methods it has (Allow), not 404.
  const routes: { methods: string[]; pattern: RegExp }[] = [];
  app.addHook('onRoute', (r) => {
    routes.push({ methods: [r.method].flat().map(String), pattern: pathPattern(r.url ?? r.path) });
  });

  app.addHook('onRequest', requireHost);
  app.addHook('preParsing', refuseContentEncoding);
  registerCors(app);
  app.decorateRequest('caller', null as never);
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_req, reply, done) => {
    if (!closing) return done();
    void reply.header('connection', 'close');
    done(
      new HeraldError('HERALD_ERR_UNAVAILABLE', 'Herald is shutting down; retry (another instance may answer)', {
        retryAfter: 1,
      }),
    );
  });
  app.addHook('onRequest', async (req) => {
    const mode = req.routeOptions.config.auth ?? 'none';
    if (mode !== 'none') req.caller = await deps.auth.caller(req.headers.authorization, mode === 'producer-or-user');
  });
  // After authentication (it needs the caller) and before any route is added (it hooks them).
  if (deps.rateLimiter && deps.config.rateLimit) {
    // Loaded only when limits are configured: @fastify/rate-limit is ~1 MB of RSS nobody else needs.
    const { registerRateLimit } = await import('./rate-limit.ts');
    await registerRateLimit(app, { limiter: deps.rateLimiter, ...deps.config.rateLimit });
  }

  app.setErrorHandler((error: FastifyError | HeraldError, req, reply) => {
    const e = toHeraldError(error);
    if (e.status >= 500) {
      // The path only: a query may carry a user token (`/v1/realtime?token=…`).
      const path = req.url.split('?')[0];
      (deps.failureLog ?? req.log).error({ err: error, method: req.method, path, reqId: req.id }, 'request failed');
    }
    if (e.retryAfter !== undefined) void reply.header('retry-after', String(e.retryAfter));
    return reply.status(e.status).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))];
    if (allowed.length) {
      const e = new HeraldError(
        'HERALD_ERR_METHOD_NOT_ALLOWED',
        `${path} does not take ${req.method}; it takes ${allowed.join(', ')}`,
      );
      return reply.status(e.status).header('allow', allowed.join(', ')).send(e.toJSON());
    }
    const e = new HeraldError('HERALD_ERR_NOT_FOUND', `no route ${req.method} ${path}`);
    return reply.status(404).send(e.toJSON());
  });

  const metrics = new Metrics(deps.events, deps.ingest, deps.routes, deps.live);
  await registerDocs(app);
  if (options.api) {
    notificationRoutes(app, deps);
    batchRoutes(app, deps);
    userRoutes(app, deps);
    templateRoutes(app, deps);
    deviceRoutes(app, deps);
    preferenceRoutes(app, deps);
    topicRoutes(app, deps);
    categoryRoutes(app, deps);
    unsubscribeRoutes(app, deps, deps.unsubscribe);
    retentionRoutes(app, deps);
  }
  opsRoutes(app, deps, metrics);
  realtimeRoutes(app, deps);
  return app;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Deepest nesting a JSON body may have (`data` itself allows 32 levels). */
const MAX_BODY_DEPTH = 64;

/**
 * Whether JSON text nests arrays and objects deeper than `limit`: one pass over the characters,
 * skipping strings. Checked before anything walks the parsed value recursively (the validator,
 * protoKeyPath), which a body nested 100,000 levels deep would otherwise drive out of stack.
 */
function nestsDeeperThan(text: string, limit: number): boolean {
  if (text.length <= limit) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Where a parsed JSON value has an own `__proto__` key (`data.a.__proto__`), or null. */
function protoKeyPath(value: unknown, path = ''): string | null {
  if (value === null || typeof value !== 'object') return null;
  for (const [k, v] of Object.entries(value)) {
    const here = Array.isArray(value) ? `${path}[${k}]` : path ? `${path}.${k}` : k;
    if (k === '__proto__') return here;
    const inner = protoKeyPath(v, here);
    if (inner !== null) return inner;
  }
  return null;
}

/** A route path (`/v1/notifications/:id`, `/docs/*`) as a regular expression for concrete paths. */
function pathPattern(route: string): RegExp {
  const source = route
    .split('/')
    .map((part) => (part === '*' ? '.*' : part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}

const FASTIFY_CODES: Record<string, ConstructorParameters<typeof HeraldError>[0]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'HERALD_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'HERALD_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'HERALD_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'HERALD_ERR_VALIDATION',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'HERALD_ERR_VALIDATION',
  FST_ERR_CTP_INVALID_JSON_BODY: 'HERALD_ERR_MALFORMED_JSON',
};

function toHeraldError(error: FastifyError | HeraldError): HeraldError {
  if (error instanceof HeraldError) return error;
  const mapped = FASTIFY_CODES[error.code];
  if (mapped) return new HeraldError(mapped, error.message, { cause: error });
  const status = error.statusCode ?? 500;
  if (status === 404) return new HeraldError('HERALD_ERR_NOT_FOUND', error.message, { cause: error });
  if (status === 413) return new HeraldError('HERALD_ERR_BODY_TOO_LARGE', error.message, { cause: error });
  if (status === 415) return new HeraldError('HERALD_ERR_UNSUPPORTED_MEDIA_TYPE', error.message, { cause: error });
  if (status >= 400 && status < 500) return new HeraldError('HERALD_ERR_VALIDATION', error.message, { cause: error });
  if (status === 503) return new HeraldError('HERALD_ERR_UNAVAILABLE', error.message, { cause: error, retryAfter: 1 });
  if (isUnavailable(error)) {
    return new HeraldError('HERALD_ERR_UNAVAILABLE', 'the store is unavailable; retry shortly', {
      cause: error,
      retryAfter: 1,
    });
  }
  return new HeraldError('HERALD_ERR_INTERNAL', 'internal error', { cause: error });
}
