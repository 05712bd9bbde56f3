/**
 * The guarded HTTP client: the one way Herald sends a request to a URL a user supplied (webhooks
 * now; chat and Web Push endpoints use it too). One kept-alive undici Agent per client.
 *
 * Promises:
 * - Never connects to an address the EgressPolicy refuses. A literal address is checked before
 *   connecting; a name is checked on the addresses its lookup returns, and the socket connects only
 *   to those that passed (net.connect connects to what the lookup returns, so a name that answers a
 *   public address to one lookup and 127.0.0.1 to the next cannot slip through: each connection is
 *   judged on its own answer). Once connected, the socket's remote address is checked again.
 * - Redirects are not followed: a 3xx is an answer like any other.
 * - Tells apart only what a sender may know: `not_allowed` (permanent), `could_not_connect`
 *   (transient; one message whether the destination refused, was unreachable, did not resolve or
 *   did not answer in time, so the failure text is no port scanner), and, once a connection exists,
 *   `timeout` and `broken` (transient) or the receiver's answer. A certificate problem is named
 *   (the receiver is misconfigured, and telling so is what makes it fixable).
 * - Resolves within `timeoutMs` (plus a timer's lateness), whatever the receiver does; a request
 *   still waiting for a connection then is never sent. At most `maxResponseBytes` of an answer are
 *   read; a longer answer is cut off (its connection closed) and returned truncated.
 *
 * Costs: a name is looked up once per new connection (DNS work is per connection, not per request).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import type { SendResult } from '../core/ports-channels.ts';
import type { EgressPolicy, EgressRefusal } from './egress-policy.ts';
import { retryAfter } from './retry-after.ts';
import { undiciBackstopMs } from './undici-backstop.ts';

export type HttpOutcome =
  | { kind: 'answer'; status: number; headers: IncomingHttpHeaders; body: string }
  /** Permanent: the destination is not allowed (message names the address and the setting). */
  | { kind: 'not_allowed'; error: string }
  /** Permanent: not an http(s) URL. */
  | { kind: 'bad_url'; error: string }
  /** Transient: no connection could be made (refused, unreachable, not resolved, too slow: one message). */
  | { kind: 'could_not_connect'; error: string }
  /** Transient: connected, but no complete answer within the time allowed. */
  | { kind: 'timeout'; error: string }
  /** Transient: connected, then the connection failed (reset, not HTTP). */
  | { kind: 'broken'; error: string };

export interface PostOptions {
  headers: Record<string, string>;
  body: string | Uint8Array;
  /** The whole request, connecting included. */
  timeoutMs: number;
}

/** Resolves a name to every address it has (node:dns lookup with `all: true`). */
export type Resolver = (
  hostname: string,
  options: { family?: number; hints?: number; all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

export interface GuardedHttpOptions {
  policy: EgressPolicy;
  /** Kept-alive connections per origin; default 128. */
  connectionsPerOrigin?: number;
  /** Longest a connection attempt may take; default 10 000 ms. */
  connectTimeoutMs?: number;
  /** Idle kept-alive connections close after this; default 30 000 ms. */
  keepAliveTimeoutMs?: number;
  /** Bytes of an answer read at most; default 131 072. */
  maxResponseBytes?: number;
  /** Name resolution; default node:dns lookup (tests inject one). */
  resolve?: Resolver;
  /** Certificate authorities to trust instead of the system's (PEM); default the system's and NODE_EXTRA_CA_CERTS. */
  ca?: string | string[];
}

/** A connection the policy refused; carries the refusal to the request that asked for it. */
export class EgressRefusedError extends Error {
  override name = 'EgressRefusedError';
  readonly code = 'HERALD_EGRESS_REFUSED';
  constructor(readonly refusal: EgressRefusal) {
    super(refusal.message);
  }
}

class AnswerTooLarge extends Error {}
class GaveUp extends Error {}

const defaultResolver: Resolver = (hostname, options, callback) => dnsLookup(hostname, options, callback);

/**
 * Certificate failures are named: they come after the connection exists, and they are what a
 * receiver must fix. Other TLS failures (a port that does not speak TLS) read "could not connect".
 */
const CERTIFICATE_CODE =
  /^(CERT_|UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE)|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|ERR_TLS_CERT_ALTNAME_INVALID$)/;

export class GuardedHttpClient {
  private readonly agent: Agent;
  private readonly maxResponseBytes: number;

  constructor(options: GuardedHttpOptions) {
    this.maxResponseBytes = options.maxResponseBytes ?? 131_072;
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 128,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      connect: guardedConnector(options.policy, options.resolve ?? defaultResolver, {
        timeout: options.connectTimeoutMs ?? 10_000,
        ...(options.ca ? { ca: options.ca } : {}),
      }),
    });
  }

  /** POSTs `body` to `url`; never throws. */
  post(url: string, options: PostOptions): Promise<HttpOutcome> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.resolve({ kind: 'bad_url', error: 'the URL does not parse' });
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      return Promise.resolve({
        kind: 'bad_url',
        error: `${target.protocol} URLs are not sent to (only http and https)`,
      });
    }
    if (target.username || target.password) {
      return Promise.resolve({ kind: 'bad_url', error: 'the URL holds credentials (user:password@)' });
    }
    return new Promise((resolve) => {
      const handler = new PostHandler(resolve, options.timeoutMs, this.maxResponseBytes);
      this.agent.dispatch(
        {
          origin: target.origin,
          path: `${target.pathname}${target.search}`,
          method: 'POST',
          headers: options.headers,
          body: options.body,
          headersTimeout: undiciBackstopMs(options.timeoutMs),
          bodyTimeout: undiciBackstopMs(options.timeoutMs),
        },
        handler,
      );
    });
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/**
 * Collects one answer. `connected` turns true when undici starts the request on a connected socket
 * (onRequestStart): before that every failure is `could_not_connect`, after it `timeout` or `broken`.
 */
class PostHandler implements Dispatcher.DispatchHandler {
  private connected = false;
  private settled = false;
  private controller: Dispatcher.DispatchController | null = null;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly done: (o: HttpOutcome) => void,
    private readonly timeoutMs: number,
    private readonly maxBytes: number,
  ) {
    this.timer = setTimeout(() => this.onTimer(), timeoutMs);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Gave up while it waited for a connection: it must not go out late.
    if (this.settled) controller.abort(new GaveUp('gave up before a connection was made'));
    else this.connected = true;
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    const room = this.maxBytes - this.bytes;
    this.chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
    this.bytes += Math.min(chunk.length, room);
    if (chunk.length > room) {
      this.settleAnswer();
      controller.abort(new AnswerTooLarge(`answer longer than ${this.maxBytes} bytes`));
    }
  }

  onResponseEnd(): void {
    this.settleAnswer();
  }

  onResponseError(_c: Dispatcher.DispatchController | undefined, error: Error): void {
    this.settle(this.classify(error));
  }

  private onTimer(): void {
    if (this.settled) return;
    if (!this.connected) {
      this.settle({ kind: 'could_not_connect', error: 'could not connect' });
      return;
    }
    this.settle({ kind: 'timeout', error: `timed out after ${this.timeoutMs} ms` });
    this.controller?.abort(new GaveUp(`timed out after ${this.timeoutMs} ms`));
  }

  private classify(error: Error): HttpOutcome {
    if (error instanceof EgressRefusedError) return { kind: 'not_allowed', error: error.message };
    const code = (error as { code?: string }).code ?? '';
    if (!this.connected) {
      if (CERTIFICATE_CODE.test(code)) {
        return { kind: 'could_not_connect', error: `could not connect: TLS certificate not accepted (${code})` };
      }
      return { kind: 'could_not_connect', error: 'could not connect' };
    }
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return { kind: 'timeout', error: `timed out after ${this.timeoutMs} ms` };
    }
    return { kind: 'broken', error: `the connection failed: ${code || error.message}` };
  }

  private settleAnswer(): void {
    const body = this.chunks.length === 0 ? '' : Buffer.concat(this.chunks).toString('utf8');
    this.settle({ kind: 'answer', status: this.status, headers: this.headers, body });
  }

  private settle(outcome: HttpOutcome): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.done(outcome);
  }
}

/**
 * undici's connector with the policy in front: literal addresses are judged before connecting
 * (net.connect skips the lookup for them), names through the lookup, and the connected socket's
 * remote address once more.
 */
function guardedConnector(
  policy: EgressPolicy,
  resolve: Resolver,
  connectOptions: { timeout: number; ca?: string | string[] },
): buildConnector.connector {
  const checkedLookup: LookupFunction = (hostname, options, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
    resolve(hostname, { family, hints: options.hints, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const refusals: EgressRefusal[] = [];
      const allowed = addresses.filter((a) => {
        const refusal = policy.check(a.address, hostname);
        if (refusal) refusals.push(refusal);
        return refusal === null;
      });
      const [first] = allowed;
      if (!first) {
        const refusal = refusals[0];
        const e = refusal
          ? new EgressRefusedError(refusal)
          : Object.assign(new Error('no address'), { code: 'ENOTFOUND' });
        return callback(e, '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      callback(null, first.address, first.family);
    });
  };
  const base = buildConnector({ ...connectOptions, lookup: checkedLookup });
  return (opts, callback) => {
    const literal = isIP(opts.hostname) ? policy.check(opts.hostname) : null;
    if (literal) return callback(new EgressRefusedError(literal), null);
    base(opts, (err, socket) => {
      if (err) return callback(err, null);
      const s = socket as Socket;
      const remote = s.remoteAddress;
      const refusal = remote ? policy.check(remote, opts.hostname) : null;
      if (refusal || !remote) {
        s.destroy();
        return callback(refusal ? new EgressRefusedError(refusal) : new Error('connection closed at once'), null);
      }
      callback(null, s);
    });
  };
}

/**
 * A POST to a user-supplied URL (webhook, chat) as a delivery's outcome: 2xx sent (`detail` plus the
 * status); 408, 429 and 5xx transient, after the receiver's `Retry-After` if it gave one; any other
 * status (redirects included: they are not followed) permanent; a destination the egress policy
 * refuses, or a URL that cannot be used (named by `urlField`), permanent; no answer transient.
 * `said`: the receiver's own words, added to the error of an answer.
 */
export function sendResultOf(
  res: HttpOutcome,
  options: { urlField: string; detail?: Record<string, string>; said?: (body: string) => string },
): SendResult {
  switch (res.kind) {
    case 'answer': {
      const s = res.status;
      if (s >= 200 && s < 300) return { ok: true, detail: { ...options.detail, status: s } };
      const said = options.said?.(res.body);
      const error = `receiver answered HTTP ${s}${said ? `: ${said}` : ''}${s >= 300 && s < 400 ? ' (redirects are not followed)' : ''}`;
      if (s === 408 || s === 429 || s >= 500) {
        return { ok: false, permanent: false, error, ...retryAfter(res.headers['retry-after']) };
      }
      return { ok: false, permanent: true, error };
    }
    case 'not_allowed':
      return { ok: false, permanent: true, error: res.error };
    case 'bad_url':
      return { ok: false, permanent: true, error: `${options.urlField}: ${res.error}` };
    case 'could_not_connect':
    case 'timeout':
    case 'broken':
      return { ok: false, permanent: false, error: `request failed: ${res.error}` };
  }
}
