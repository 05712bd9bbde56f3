/**
 * The HTTP edge below the routes: what Node's HTTP server does before Fastify sees a request, made
 * to hold Herald's promises.
 *
 * - A request whose headers and body are not complete within `HERALD_REQUEST_TIMEOUT_MS` is
 *   answered `408 HERALD_ERR_REQUEST_TIMEOUT` and its connection closed, within a second of the
 *   setting (Node checks its timers every `connectionsCheckingInterval`, 30 s by default; here a
 *   tenth of the setting, at most 1 s). The clock runs from the first byte of each request (from
 *   the connection's opening for its first one) until the request is complete; it does not run
 *   while a complete request is being answered, between the requests of a keep-alive connection
 *   (`keepAliveTimeout` closes those), or on a connection upgraded to a WebSocket.
 * - What Node's parser refuses is answered in Herald's error shape, never in Node's or Fastify's:
 *   `400 HERALD_ERR_BAD_REQUEST` (a bad request line, header, `Content-Length`, chunk, an HTTP/1.1
 *   request without `Host`), `431 HERALD_ERR_HEADERS_TOO_LARGE` (headers over Node's 16 KiB), and
 *   `417 HERALD_ERR_EXPECTATION_FAILED` (an `Expect` other than `100-continue`); each closes the
 *   connection, as the request's end can no longer be told.
 * - At most `HERALD_MAX_CONNECTIONS` TCP connections are open at once, WebSockets included (an
 *   upgraded connection stays one until it closes); Node closes the next one as it is accepted,
 *   before a byte is read (no answer is possible), and frees the slot when a connection closes.
 * - A body with a `Content-Encoding` other than `identity` is refused with
 *   `415 HERALD_ERR_UNSUPPORTED_ENCODING` before it reaches the JSON parser: Herald decodes none.
 */
import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { FastifyReply, FastifyRequest, RequestPayload } from 'fastify';
import type { Logger } from 'pino';
import { HeraldError } from '../core/errors.ts';

/**
 * Node's server options for a request timeout of `requestTimeoutMs`. `requestTimeout` must also be
 * given to Fastify, which sets it on the server after creating it (its default, 0, would win).
 */
export function httpServerOptions(requestTimeoutMs: number): ServerOptions {
  return {
    requestTimeout: requestTimeoutMs,
    headersTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(requestTimeoutMs / 10))),
    // Answered by requireHost below, in Herald's shape, instead of an empty 400.
    requireHostHeader: false,
  };
}

/**
 * Fastify's `clientErrorHandler`: Node could not read a request (a parse error, headers too large,
 * the request timeout). Answers in Herald's shape when nothing of a response has been sent yet on
 * the connection, then closes it.
 */
export function clientErrorHandler(logger: Logger, requestTimeoutMs: number): (error: Error, socket: Socket) => void {
  return (error, socket) => {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    // Already answered (the parser reports on, e.g. the client's end): closeAfterAnswer has it.
    if (answered.has(socket)) return;
    // A reset connection: nothing to write to.
    if (code === 'ECONNRESET' || code === 'EPIPE' || socket.destroyed) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    const e = clientErrorOf(error, code, requestTimeoutMs);
    logger.debug({ err: error, code: e.code }, 'refused a request Node could not read');
    const response = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    // Like Node: no answer in the middle of another one (a pipelined request while the previous
    // answer is being written).
    if (socket.writable && !response?.headersSent) socket.write(rawResponse(e));
    closeAfterAnswer(socket);
  };
}

/** Sockets a client error has been answered on (the parser may report the same error again). */
const answered = new WeakSet<Socket>();

function clientErrorOf(error: Error, code: string, requestTimeoutMs: number): HeraldError {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new HeraldError(
      'HERALD_ERR_REQUEST_TIMEOUT',
      `the request headers and body did not arrive within HERALD_REQUEST_TIMEOUT_MS (${requestTimeoutMs} ms)`,
      { cause: error },
    );
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new HeraldError('HERALD_ERR_HEADERS_TOO_LARGE', 'the request headers are larger than 16 KiB', {
      cause: error,
    });
  }
  const reason = (error as { reason?: unknown }).reason;
  const why = typeof reason === 'string' && reason ? reason : error.message;
  return new HeraldError('HERALD_ERR_BAD_REQUEST', `the request is not valid HTTP/1.1: ${why} (${code || 'unknown'})`, {
    cause: error,
  });
}

/** How long a closed connection keeps reading what the client still sends before it is cut. */
const LINGER_MS = 1_000;

/**
 * Ends the connection after the answer: nothing more the client sends is parsed (no request after
 * a 408 is served), a FIN once the answer is written, and the socket destroyed when the client
 * closes too, or after LINGER_MS. Destroying at once while the client is still sending would reset
 * the connection, and a reset can discard the answer before the client reads it.
 */
function closeAfterAnswer(socket: Socket): void {
  // Node's HTTP server reads the socket through its parser; a 'data' listener of our own takes the
  // socket back from it, and without the server's own listener the bytes go nowhere.
  socket.removeAllListeners('data');
  socket.on('data', discard);
  socket.resume();
  socket.end();
  const cut = setTimeout(() => socket.destroy(), LINGER_MS);
  cut.unref();
  socket.once('close', () => clearTimeout(cut));
}

function discard(): void {}

function rawResponse(e: HeraldError): string {
  const body = JSON.stringify(e.toJSON());
  return (
    `HTTP/1.1 ${e.status} ${REASONS[e.status] ?? 'Error'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n' +
    '\r\n' +
    body
  );
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  417: 'Expectation Failed',
  431: 'Request Header Fields Too Large',
};

/**
 * Node's `checkExpectation` listener: a request whose `Expect` is not `100-continue` is answered
 * 417 in Herald's shape (Node's own answer has no body).
 */
export function refuseExpectation(req: IncomingMessage, res: ServerResponse): void {
  const e = new HeraldError(
    'HERALD_ERR_EXPECTATION_FAILED',
    `Expect: ${req.headers.expect ?? ''} cannot be met; only 100-continue is supported`,
  );
  const body = JSON.stringify(e.toJSON());
  res.shouldKeepAlive = false;
  res.writeHead(e.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** Fastify onRequest hook: an HTTP/1.1 request must name its host (RFC 9112 §3.2). */
export function requireHost(req: FastifyRequest, reply: FastifyReply, done: (e?: Error) => void): void {
  if (req.headers.host !== undefined || req.raw.httpVersionMajor !== 1 || req.raw.httpVersionMinor < 1) {
    done();
    return;
  }
  void reply.header('connection', 'close');
  done(new HeraldError('HERALD_ERR_BAD_REQUEST', 'an HTTP/1.1 request must have a Host header'));
}

/** Fastify preParsing hook: refuses a body Herald would have to decode first. */
export function refuseContentEncoding(
  req: FastifyRequest,
  reply: FastifyReply,
  payload: RequestPayload,
  done: (e: Error | null, payload?: RequestPayload) => void,
): void {
  const header = req.headers['content-encoding'];
  if (header === undefined || !hasBody(req)) {
    done(null, payload);
    return;
  }
  const codings = header
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter(Boolean);
  const unsupported = codings.filter((c) => c !== 'identity');
  if (unsupported.length === 0) {
    done(null, payload);
    return;
  }
  void reply.header('accept-encoding', 'identity');
  done(
    new HeraldError(
      'HERALD_ERR_UNSUPPORTED_ENCODING',
      `Content-Encoding: ${unsupported.join(', ')} is not supported; send the body uncompressed`,
      { details: [{ field: 'Content-Encoding', message: 'only identity is accepted' }] },
    ),
  );
}

function hasBody(req: FastifyRequest): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Caps open connections at `max` (`server.maxConnections`) and logs, at most once a minute, that
 * connections are being refused.
 */
export function capConnections(server: Server, max: number, logger: Logger): void {
  server.maxConnections = max;
  let lastWarned = 0;
  let dropped = 0;
  server.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - lastWarned < 60_000) return;
    lastWarned = now;
    logger.warn({ dropped, maxConnections: max }, 'refusing connections: HERALD_MAX_CONNECTIONS are open');
    dropped = 0;
  });
}
