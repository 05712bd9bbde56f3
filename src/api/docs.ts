/**
 * The OpenAPI 3.1 document (/openapi.json) and its UI (/docs), built from the routes' zod schemas
 * and the answer shapes of openapi-shapes.ts.
 *
 * Promises: every `$ref` in the document resolves (zod's recursive JSON value is written as "any
 * JSON value", other shared definitions are inlined); every example is a real value, never one made
 * up from a regular expression; each route's security is taken from its `config.auth` (producer:
 * the API key; producer-or-user: the API key or that user's token), with the 401/403/429 answers
 * that follow from it; the webhook Herald sends is described under `webhooks`.
 * test/openapi.integration.test.ts validates the document and test/docs-browser.integration.test.ts
 * opens the UI in Chromium.
 */
import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ERRORS, type ErrorCode } from '../core/errors.ts';
import { EXAMPLES, SHAPES, type Shape } from './openapi-shapes.ts';

type JsonSchema = Record<string, unknown>;

/**
 * A zod schema as JSON Schema 2020-12 (the dialect of OpenAPI 3.1), input shape (defaults
 * optional). `example` is shown by the UI instead of a value generated from the schema.
 */
export function doc(schema: z.ZodType, options: { example?: unknown } = {}): JsonSchema {
  const out = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    target: 'draft-2020-12',
    override: (ctx) => {
      // z.json() is recursive; "any JSON value" is the empty schema.
      if (ctx.zodSchema._zod.def.type !== 'lazy') return;
      const target = ctx.jsonSchema as JsonSchema;
      for (const k of Object.keys(target)) delete target[k];
      target.description = 'any JSON value';
    },
  }) as JsonSchema;
  delete out.$schema;
  const inlined = inlineDefinitions(out);
  if (options.example !== undefined) inlined.examples = [options.example];
  return inlined;
}

/** A success answer for a route's `response` map: the shape, what it means, its example. */
export function ok(shape: Shape, headers?: Record<string, JsonSchema>): JsonSchema {
  return {
    description: shape.description,
    ...doc(shape.schema, { example: shape.example }),
    ...(headers && { headers }),
  };
}

/** Replaces each `#/$defs/…` reference by its definition; a definition that refers to itself is refused. */
function inlineDefinitions(schema: JsonSchema): JsonSchema {
  const defs = (schema.$defs ?? {}) as Record<string, JsonSchema>;
  delete schema.$defs;
  const resolve = (node: unknown, seen: string[]): unknown => {
    if (Array.isArray(node)) return node.map((n) => resolve(n, seen));
    if (node === null || typeof node !== 'object') return node;
    const ref = (node as JsonSchema).$ref;
    if (typeof ref === 'string' && ref.startsWith('#/$defs/')) {
      const name = ref.slice('#/$defs/'.length);
      const def = defs[name];
      if (!def || seen.includes(name)) {
        throw new Error(`the OpenAPI document cannot hold the recursive schema ${name}: describe it without recursion`);
      }
      return resolve(def, [...seen, name]);
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, resolve(v, seen)]));
  };
  return resolve(schema, []) as JsonSchema;
}

const errorBody = (codes: ErrorCode[]) =>
  doc(
    z.object({
      error: z.object({
        code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
        message: z.string(),
        details: z
          .unknown()
          .describe('For HERALD_ERR_VALIDATION: `[{"field", "message"}]`; otherwise null or an object'),
      }),
    }),
  );

/** A realistic answer for each code; a code missing here is shown with its catalogue summary. */
const ERROR_EXAMPLES: Partial<Record<ErrorCode, { message: string; details?: unknown }>> = {
  HERALD_ERR_VALIDATION: {
    message: 'to: must name at least one user',
    details: [{ field: 'to', message: 'must name at least one user' }],
  },
  HERALD_ERR_MALFORMED_JSON: { message: 'the body is not valid JSON: Unexpected end of JSON input' },
  HERALD_ERR_INVALID_ENCODING: { message: 'the body is not valid UTF-8' },
  HERALD_ERR_BAD_REQUEST: { message: 'the HTTP request could not be parsed' },
  HERALD_ERR_UNAUTHORIZED: { message: 'missing Authorization: Bearer <api key>' },
  HERALD_ERR_FORBIDDEN: { message: 'this user token may only act on its own user' },
  HERALD_ERR_NOT_FOUND: { message: 'no notification 01a24ce0-002a-7000-8dde-a9b942d4282b' },
  HERALD_ERR_IDEMPOTENCY_CONFLICT: {
    message: 'this Idempotency-Key was used with another body within 24 hours',
    details: { id: '01a24ce0-002a-7000-8dde-a9b942d4282b' },
  },
  HERALD_ERR_NOT_CANCELLABLE: { message: 'some delivery of this notification has already started' },
  HERALD_ERR_NOT_REPLAYABLE: { message: 'delivery 01a24ce0-002f-7001-89c8-72d0328424ae is not failed or dead' },
  HERALD_ERR_TEMPLATE_RENDER: {
    message: 'locales.en.email.html: template render limit exceeded, line:1, col:1',
    details: [{ field: 'locales.en.email.html', message: 'template render limit exceeded, line:1, col:1' }],
  },
  HERALD_ERR_TOO_MANY_DEVICES: { message: 'user alice already holds 100 devices: delete one first' },
  HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN: {
    message: 'the unsubscribe token was not signed by this Herald (or was altered)',
  },
  HERALD_ERR_BODY_TOO_LARGE: { message: 'Request body is too large' },
  HERALD_ERR_UNSUPPORTED_MEDIA_TYPE: { message: 'charset=latin1: JSON bodies must be UTF-8' },
  HERALD_ERR_UNSUPPORTED_ENCODING: { message: 'Content-Encoding gzip is not supported: send the body uncompressed' },
  HERALD_ERR_RATE_LIMITED: { message: 'rate limit exceeded for this API key; retry in 1 s' },
  HERALD_ERR_OVERLOADED: { message: 'ingest is saturated; retry shortly' },
  HERALD_ERR_UNAVAILABLE: { message: 'Herald is shutting down; retry (another instance may answer)' },
  HERALD_ERR_UPGRADE_REQUIRED: { message: 'connect with a WebSocket client (Upgrade: websocket)' },
};

const RETRY_AFTER = { type: 'integer' as const, description: 'Seconds to wait before retrying' };

/**
 * Error answers for a route's `response` map, each with an example per code. A status stands for
 * every code with that status; a code, for itself alone (`'HERALD_ERR_NOT_CANCELLABLE'` documents
 * a 409 that is only that).
 */
export function errorResponses(...which: (number | ErrorCode)[]): Record<number, unknown> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const w of which) {
    const codes =
      typeof w === 'number' ? (Object.keys(ERRORS) as ErrorCode[]).filter((c) => ERRORS[c].status === w) : [w];
    if (codes.length === 0) throw new Error(`no error code has HTTP status ${w}`);
    const status = typeof w === 'number' ? w : ERRORS[w].status;
    byStatus.set(status, [...new Set([...(byStatus.get(status) ?? []), ...codes])]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, codes]) => {
      const examples = codes.map((code) => ({
        error: {
          code,
          message: ERROR_EXAMPLES[code]?.message ?? ERRORS[code].summary,
          details: ERROR_EXAMPLES[code]?.details ?? null,
        },
      }));
      const retryable = status === 429 || status === 503;
      return [
        status,
        {
          description: codes.map((c) => `\`${c}\`: ${ERRORS[c].summary}`).join(' '),
          ...errorBody(codes),
          examples,
          ...(retryable && { headers: { 'retry-after': RETRY_AFTER } }),
        },
      ];
    }),
  );
}

const RATE_LIMIT_HEADERS: Record<string, JsonSchema> = {
  'ratelimit-limit': { type: 'integer', description: 'Requests per window for this API key (when a limit is set)' },
  'ratelimit-remaining': { type: 'integer', description: 'Requests left in the current window' },
  'ratelimit-reset': { type: 'integer', description: 'Seconds until the window resets' },
};

const SECURITY: Record<'producer' | 'producer-or-user' | 'none', Record<string, string[]>[]> = {
  producer: [{ apiKey: [] }],
  'producer-or-user': [{ apiKey: [] }, { userToken: [] }],
  none: [],
};

/**
 * The route's schema as the document shows it: security from `config.auth`, and the answers that
 * authentication and rate limiting add (401; 403 for user tokens; 429 with the RateLimit headers).
 */
function withSecurity(schema: JsonSchema | undefined, auth: keyof typeof SECURITY): JsonSchema | undefined {
  if (!schema) return schema;
  const response = { ...((schema.response ?? {}) as Record<string, JsonSchema>) };
  const add = (code: ErrorCode) => {
    if (!response[ERRORS[code].status]) Object.assign(response, errorResponses(code));
  };
  if (auth !== 'none') {
    add('HERALD_ERR_UNAUTHORIZED');
    add('HERALD_ERR_RATE_LIMITED');
    for (const [status, r] of Object.entries(response)) {
      if (status.startsWith('2') || status === '429')
        response[status] = { ...r, headers: { ...(r.headers as JsonSchema), ...RATE_LIMIT_HEADERS } };
    }
  }
  if (auth === 'producer-or-user') add('HERALD_ERR_FORBIDDEN');
  return { ...schema, response, security: schema.security ?? SECURITY[auth] };
}

const DESCRIPTION = `Herald takes notifications from your backend services and delivers them to people: live over
a WebSocket, in an in-app inbox, and by signed webhooks.

**Authentication.** Producers (backend services) send \`Authorization: Bearer <api key>\`. Users
(browsers, apps) send a user token (an HS256 JWT whose \`sub\` is the user id), issued by
\`POST /v1/users/{userId}/tokens\`; it may read and act on that user's data only. Routes marked with
both schemes take either.

**Errors.** Every 4xx/5xx answer is \`{"error": {"code": "HERALD_ERR_…", "message": "…", "details": …}}\`.
\`429\` and \`503\` carry \`Retry-After\`. When a rate limit is set, every answer to a producer carries
\`RateLimit-Limit\`, \`RateLimit-Remaining\` and \`RateLimit-Reset\`.

**Real time.** \`GET /v1/realtime?token=…&after=…\` is a WebSocket; its protocol is in
docs/realtime.md in the repository, with the whole contract in docs/contract.md.`;

const WEBHOOK_HEADERS = [
  ['webhook-id', 'The delivery id: the same on every attempt, so a receiver can drop duplicates', 'string'],
  ['webhook-timestamp', 'Seconds since the Unix epoch when this attempt was signed', 'integer'],
  [
    'webhook-signature',
    '`v1,` then the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the ' +
      'base64-decoded part of `HERALD_WEBHOOK_SECRET` after `whsec_` (Standard Webhooks)',
    'string',
  ],
  ['herald-attempt', 'Which attempt this is: 1, 2, …', 'integer'],
] as const;

const WEBHOOK_EXAMPLE_HEADERS: Record<string, unknown> = {
  'webhook-id': EXAMPLES.deliveryId,
  'webhook-timestamp': 1796586078,
  'webhook-signature': 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
  'herald-attempt': 1,
};

type Webhooks = NonNullable<Extract<FastifyDynamicSwaggerOptions['openapi'], { webhooks?: unknown }>['webhooks']>;

const WEBHOOKS: Webhooks = {
  notification: {
    post: {
      tags: ['webhooks'],
      summary: "Herald POSTs each webhook delivery to the user's webhookUrl",
      description:
        'Sent for a notification on channel `webhook`, signed as Standard Webhooks do. The body is ' +
        'byte-for-byte the same on every attempt; only `webhook-timestamp` and the signature change. ' +
        'Redirects are not followed. Herald connects only to public addresses unless ' +
        '`HERALD_EGRESS_ALLOW` covers the address.',
      security: [],
      parameters: WEBHOOK_HEADERS.map(([name, description, type]) => ({
        in: 'header' as const,
        name,
        required: true,
        description,
        schema: { type },
        example: WEBHOOK_EXAMPLE_HEADERS[name],
      })),
      requestBody: {
        required: true,
        content: { 'application/json': { schema: doc(SHAPES.webhook.schema), example: SHAPES.webhook.example } },
      },
      responses: {
        '2XX': { description: 'Received: the delivery is `sent`' },
        '408': { description: 'Retried with backoff' },
        '429': {
          description: 'Retried, no sooner than its `Retry-After`',
          headers: { 'retry-after': { schema: RETRY_AFTER } },
        },
        '5XX': {
          description:
            'Retried with backoff (so are timeouts and network errors); after the last attempt the delivery is `dead`',
        },
        default: { description: 'Any other status, redirects included: the delivery fails without retry (`failed`)' },
      },
    },
  },
  chatMessage: {
    post: {
      tags: ['webhooks'],
      summary: "Herald POSTs each chat delivery to the user's chatWebhookUrl",
      description:
        'Sent for a notification on channel `chat`, in the format of Slack incoming webhooks (also ' +
        'taken by Mattermost, Rocket.Chat and others). The same body on every attempt. Redirects are ' +
        'not followed. Herald connects only to public addresses unless `HERALD_EGRESS_ALLOW` covers the address.',
      security: [],
      requestBody: {
        required: true,
        content: {
          'application/json': { schema: doc(SHAPES.chatMessage.schema), example: SHAPES.chatMessage.example },
        },
      },
      responses: {
        '2XX': { description: 'Received: the delivery is `sent`' },
        '408': { description: 'Retried with backoff' },
        '429': {
          description: 'Retried, no sooner than its `Retry-After`',
          headers: { 'retry-after': { schema: RETRY_AFTER } },
        },
        '5XX': {
          description:
            'Retried with backoff (so are timeouts and network errors); after the last attempt the delivery is `dead`',
        },
        default: {
          description:
            "Any other status (Slack: `404 no_service`, `410 channel_is_archived`, `403 action_prohibited`), redirects included: the delivery fails without retry (`failed`), with the receiver's text as `lastError`",
        },
      },
    },
  },
};

export async function registerDocs(app: FastifyInstance): Promise<void> {
  const options: FastifyDynamicSwaggerOptions = {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Herald API', version: '1', description: DESCRIPTION },
      tags: [
        { name: 'notifications', description: 'Send notifications and follow their deliveries' },
        { name: 'users', description: 'Profiles (contact points) and user tokens' },
        { name: 'topics', description: 'Topic subscribers; send to all of them with `to: {"topic"}`' },
        { name: 'inbox', description: "A user's in-app inbox (producer or that user)" },
        { name: 'real time', description: 'The WebSocket and presence' },
        { name: 'dead letters', description: 'Deliveries that failed for good, and replaying them' },
        { name: 'operations', description: 'Health, readiness and metrics (no authentication)' },
        { name: 'webhooks', description: 'What Herald sends to your receivers' },
      ],
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'A producer API key (`HERALD_API_KEYS`)' },
          userToken: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: "A user token (POST /v1/users/{userId}/tokens): that user's data only",
          },
          unsubscribeToken: {
            type: 'apiKey',
            in: 'query',
            name: 'token',
            description: "The token of an email's List-Unsubscribe link: it names the user, category and channel",
          },
          realtimeToken: {
            type: 'apiKey',
            in: 'query',
            name: 'token',
            description: 'A user token in the query, for the WebSocket upgrade',
          },
        },
      },
      security: [...SECURITY.producer],
      webhooks: WEBHOOKS,
    },
    transform: ({ schema, url, route }) => ({
      schema: withSecurity(schema as JsonSchema | undefined, route.config?.auth ?? 'none') as typeof schema,
      url,
    }),
  };
  await app.register(swagger, options);
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
