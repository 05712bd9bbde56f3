/**
 * The one error catalogue. Every error Herald answers with has a stable code, an HTTP status and a
 * retryable flag; docs/errors.md documents each code and a test keeps the two in sync.
 */

export const ERRORS = {
  HERALD_ERR_VALIDATION: {
    status: 400,
    retryable: false,
    summary: 'A field of the request is missing or invalid; `details` names each field.',
  },
  HERALD_ERR_MALFORMED_JSON: { status: 400, retryable: false, summary: 'The body is not valid JSON.' },
  HERALD_ERR_INVALID_ENCODING: {
    status: 400,
    retryable: false,
    summary: 'The body is not valid UTF-8. (A string holding a NUL or an unpaired surrogate is HERALD_ERR_VALIDATION.)',
  },
  HERALD_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, summary: 'The body is not `application/json`.' },
  HERALD_ERR_BODY_TOO_LARGE: {
    status: 413,
    retryable: false,
    summary: 'The body is larger than `HERALD_MAX_BODY_BYTES` (`HERALD_MAX_BATCH_BODY_BYTES` for a batch).',
  },
  HERALD_ERR_UNAUTHORIZED: { status: 401, retryable: false, summary: 'Missing or wrong API key or user token.' },
  HERALD_ERR_FORBIDDEN: {
    status: 403,
    retryable: false,
    summary: 'The credentials are valid but may not act on this resource (a user token for another user).',
  },
  HERALD_ERR_NOT_FOUND: { status: 404, retryable: false, summary: 'No such notification, dead letter or route.' },
  HERALD_ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    retryable: false,
    summary: 'The route exists but not with this method.',
  },
  HERALD_ERR_UPGRADE_REQUIRED: {
    status: 426,
    retryable: false,
    summary: '`/v1/realtime` is a WebSocket endpoint: connect with a WebSocket client.',
  },
  HERALD_ERR_IDEMPOTENCY_CONFLICT: {
    status: 409,
    retryable: false,
    summary: 'The `Idempotency-Key` was used within 24 h with another body.',
  },
  HERALD_ERR_NOT_CANCELLABLE: {
    status: 409,
    retryable: false,
    summary: 'Some delivery of the notification has already started or finished.',
  },
  HERALD_ERR_NOT_REPLAYABLE: {
    status: 409,
    retryable: false,
    summary: 'The dead letter is no longer failed or dead (it was replayed already).',
  },
  HERALD_ERR_TEMPLATE_RENDER: {
    status: 422,
    retryable: false,
    summary:
      'The template could not be rendered with this input (a render limit was exceeded); `details` names the field.',
  },
  HERALD_ERR_TOO_MANY_DEVICES: {
    status: 409,
    retryable: false,
    summary: 'The user already holds 100 push devices; delete one before registering another.',
  },
  HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN: {
    status: 400,
    retryable: false,
    summary: 'The `token` of an unsubscribe link is not one this Herald signed (altered, truncated or forged).',
  },
  HERALD_ERR_RATE_LIMITED: {
    status: 429,
    retryable: true,
    summary: 'This API key sent more than `HERALD_RATE_LIMIT_RPS` allows; retry after `Retry-After` seconds.',
  },
  HERALD_ERR_TOO_MANY_CONNECTIONS: {
    status: 429,
    retryable: true,
    summary: 'The user already holds `HERALD_MAX_SOCKETS_PER_USER` WebSockets; close one first.',
  },
  HERALD_ERR_BAD_REQUEST: {
    status: 400,
    retryable: false,
    summary: 'The HTTP request itself is malformed (Node.js could not parse it).',
  },
  HERALD_ERR_REQUEST_TIMEOUT: {
    status: 408,
    retryable: true,
    summary: 'The request headers or body did not arrive within `HERALD_REQUEST_TIMEOUT_MS`.',
  },
  HERALD_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    retryable: false,
    summary: 'The request headers are larger than Node.js accepts (16 KiB).',
  },
  HERALD_ERR_EXPECTATION_FAILED: {
    status: 417,
    retryable: false,
    summary: 'The request has an `Expect` header other than `100-continue`, which Herald cannot meet.',
  },
  HERALD_ERR_UNSUPPORTED_ENCODING: {
    status: 415,
    retryable: false,
    summary: 'The body has a `Content-Encoding` Herald does not decode (send it uncompressed).',
  },
  HERALD_ERR_OVERLOADED: {
    status: 429,
    retryable: true,
    summary: 'Ingest is saturated; retry after `Retry-After` seconds.',
  },
  HERALD_ERR_UNAVAILABLE: {
    status: 503,
    retryable: true,
    summary: 'The store could not be reached, or this process is shutting down; nothing was stored.',
  },
  HERALD_ERR_INTERNAL: { status: 500, retryable: true, summary: 'A bug. Nothing half-stored; the log has the cause.' },
} as const satisfies Record<string, { status: number; retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface FieldIssue {
  field: string;
  message: string;
}

export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: unknown;
  /** Seconds, for 429/503. */
  readonly retryAfter: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; cause?: unknown; retryAfter?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'HeraldError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.retryable = ERRORS[code].retryable;
    this.details = options.details ?? null;
    this.retryAfter = options.retryAfter;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details: unknown } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export function validationError(issues: FieldIssue[]): HeraldError {
  const first = issues[0];
  const message = first ? `${first.field}: ${first.message}` : 'invalid request';
  return new HeraldError('HERALD_ERR_VALIDATION', message, { details: issues });
}

/** Node's codes for a peer that cannot be reached, or went away. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/**
 * Whether `e` says a dependency (the store) is unreachable or not serving right now, rather than
 * that the request or Herald is wrong: a connection error, or SQLSTATE class 08 (connection
 * exception) or 57P (the server shutting down, restarting, or not yet accepting connections).
 * Such a failure is answered 503 with Retry-After, not 500: the client should retry.
 */
export function isUnavailable(e: unknown): boolean {
  for (let cause = e, depth = 0; cause && depth < 5; depth++) {
    const { code, message } = cause as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || /^08|^57P/.test(code))) return true;
    if (typeof message === 'string' && /Connection terminated|timeout exceeded when trying to connect/i.test(message))
      return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}
