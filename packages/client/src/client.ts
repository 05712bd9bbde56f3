/**
 * HeraldClient: a user's real-time notifications from `/v1/realtime`, kept flowing across
 * reconnects, plus the inbox over HTTP.
 *
 * Promises:
 * - Once `connect()` is called it stays connected until `close()`: after any other close it
 *   reconnects with exponential backoff and full jitter (promptly after a connection that was
 *   up, e.g. 1012 or 4408). Before reconnecting after a refused token (4401, or a 401 at the
 *   upgrade where the platform shows it), after `refreshTokenAfterFailures` sockets in a row
 *   that closed before `ready` (a browser reports a refused upgrade only as 1006), or when the
 *   token is about to expire, it asks `getToken()` for a new token.
 * - Every reconnect resumes with `after=<the last seq seen>`, so notifications sent while it was
 *   away arrive, oldest first, before live ones.
 * - `notification` fires once per notification: one whose seq is not above the last seq seen,
 *   or whose id is among the last `recentIdsCapacity` ids, is dropped.
 * - `unread` fires with the server's count on `ready` and on each `unread` frame, and with one
 *   more for each new notification that arrives unread with a seq above `ready.lastSeq` (the
 *   backlog replayed after `ready` is already in its count; an aggregated item that `replaces`
 *   another adds none: the server follows it with an `unread` frame).
 * - A resume point beyond the server's history (a reset store: `ready.lastSeq` below it) is
 *   dropped for the server's `lastSeq` on a new socket, so the client is not silenced.
 * - Acks (`autoAck`) and `markRead()` go over the socket; while it is not ready they wait (at
 *   most 1000 of them) and are sent after the next `ready`.
 *
 * Connection states: closed --connect()--> connecting --ready--> open --close frame, drop,
 * missed pongs--> closed --backoff--> connecting … ; `close()` from any state ends in closed.
 */
import { backoffDelay, DEFAULT_BACKOFF } from './backoff.ts';
import { type CloseInfo, Connection } from './connection.ts';
import { TypedEmitter } from './emitter.ts';
import { HeraldRealtimeError } from './errors.ts';
import { Inbox } from './inbox.ts';
import { RecentIds } from './recent-ids.ts';
import { TokenSource } from './token.ts';
import {
  type ClientMessage,
  CloseCode,
  type ConnectionState,
  type ConnectionStatus,
  type FetchLike,
  type HeraldClientEvents,
  type HeraldClientOptions,
  type HeraldNotification,
  type ServerMessage,
  type WebSocketConstructor,
} from './types.ts';
import { httpBaseUrl, realtimeUrl } from './urls.ts';

const MAX_OUTBOX = 1000;

interface Settings {
  url: string;
  WebSocket: WebSocketConstructor | undefined;
  fetch: FetchLike | undefined;
  autoAck: boolean;
  backoff: { baseMs: number; maxMs: number };
  heartbeatMs: number;
  maxMissed: number;
  connectTimeoutMs: number;
  refreshAfterFailures: number;
}

export class HeraldClient extends TypedEmitter<HeraldClientEvents> {
  /** The user's inbox over HTTP; works with or without a connection. */
  readonly inbox: Inbox;

  private readonly settings: Settings;
  private readonly tokens: TokenSource;
  private readonly recentIds: RecentIds;
  private readonly fixedUserId: string | null;

  private running = false;
  /** Bumped by close(): async work of an older run stops when it sees a different value. */
  private generation = 0;
  private connection: Connection | null = null;
  private cancelRetry: (() => void) | null = null;
  /** Sockets in a row that closed before `ready`. */
  private failures = 0;
  private lastClose: CloseInfo | null = null;
  private retryOverrideMs: number | null = null;
  private retryHold: Promise<unknown> | null = null;
  private outbox: ClientMessage[] = [];
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  private currentStatus: ConnectionStatus = 'closed';
  private seq: number | null;
  private unread: number | null = null;
  private readyUserId: string | null = null;
  /** `lastSeq` of the current connection's `ready`: the unread count it gave covers seqs up to here. */
  private readySeq = 0;

  constructor(options: HeraldClientOptions) {
    super();
    this.settings = settle(options);
    this.tokens = new TokenSource(options.token, options.getToken);
    this.recentIds = new RecentIds(positiveInt(options.recentIdsCapacity ?? 1000, 'recentIdsCapacity'));
    this.fixedUserId = options.userId ?? null;
    this.seq = options.after === undefined ? null : nonNegativeInt(options.after, 'after');
    this.inbox = new Inbox({
      baseUrl: httpBaseUrl(this.settings.url),
      fetch: (url, init) => {
        const f = this.settings.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
        if (!f) throw new TypeError('no fetch in this environment: pass `fetch` to HeraldClient');
        return f(url, init);
      },
      tokens: this.tokens,
      userId: () => this.userId,
    });
  }

  /** `connecting`, `open` (the server said `ready`) or `closed`. */
  get status(): ConnectionStatus {
    return this.currentStatus;
  }

  /** The last seq seen: the resume point of the next connection. */
  get lastSeq(): number | null {
    return this.seq;
  }

  /** The user's unread count as last known; null before the first `ready`. */
  get unreadCount(): number | null {
    return this.unread;
  }

  /** `userId` option, else the token's `sub`, else the `userId` of the last `ready`. */
  get userId(): string | null {
    return this.fixedUserId ?? this.tokens.subject() ?? this.readyUserId;
  }

  /**
   * Starts the connection (a no-op if it is running). Resolves at the next `ready`; rejects if
   * `close()` comes first. It keeps retrying meanwhile, so it may wait long: watch `connection`.
   */
  connect(): Promise<void> {
    const WebSocket = this.webSocketConstructor();
    if (!WebSocket) {
      return Promise.reject(
        new TypeError("no WebSocket in this environment: in Node 20 pass `WebSocket` from the 'ws' package"),
      );
    }
    const ready = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    ready.catch(() => {}); // Not awaiting connect() is fine: its rejection is not unhandled.
    if (this.connection?.isReady) this.settleWaiters(null);
    if (!this.running) {
      this.running = true;
      this.generation++;
      void this.open(WebSocket);
    }
    return ready;
  }

  /** Closes the connection for good (until the next `connect()`). */
  close(): void {
    const wasRunning = this.running;
    this.running = false;
    this.generation++;
    this.cancelRetry?.();
    this.cancelRetry = null;
    this.settleWaiters(new Error('HeraldClient closed before it was ready'));
    if (this.connection) this.connection.close(CloseCode.normal, 'client closed');
    else if (wasRunning) this.setStatus({ status: 'closed', code: CloseCode.normal, reason: 'client closed' });
  }

  /** Marks a notification read (`{"type":"read","seq"}`); every connection of the user then gets `unread`. */
  markRead(seq: number): void {
    this.sendOrQueue({ type: 'read', seq: nonNegativeInt(seq, 'seq') });
  }

  /** Acknowledges a notification; only needed with `autoAck: false`. */
  ack(seq: number): void {
    this.sendOrQueue({ type: 'ack', seq: nonNegativeInt(seq, 'seq') });
  }

  /**
   * Test hook: drops the socket without a close handshake, as a network failure would; the client
   * reconnects as after any abnormal close, or after `reconnectAfterMs`, or once `holdUntil` settles.
   */
  dropConnectionForTest(options: { reconnectAfterMs?: number; holdUntil?: Promise<unknown> } = {}): void {
    if (!this.connection) return;
    this.retryOverrideMs = options.reconnectAfterMs ?? null;
    this.retryHold = options.holdUntil ?? null;
    this.connection.drop('dropped by dropConnectionForTest()');
  }

  private webSocketConstructor(): WebSocketConstructor | undefined {
    return this.settings.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
  }

  private async open(WebSocket: WebSocketConstructor): Promise<void> {
    const generation = this.generation;
    this.setStatus({ status: 'connecting', attempt: this.failures });
    let token: string;
    try {
      const stale =
        this.tokens.canRefresh &&
        (this.lastClose?.authFailure === true || this.failures >= this.settings.refreshAfterFailures);
      token = stale ? await this.tokens.refresh() : await this.tokens.get();
    } catch (e) {
      if (generation !== this.generation) return;
      this.emit('error', e instanceof Error ? e : new Error(`getToken() failed: ${String(e)}`));
      this.failures++;
      this.retry(CloseCode.abnormal, 'getToken() failed');
      return;
    }
    if (generation !== this.generation) return;
    const { heartbeatMs, maxMissed, connectTimeoutMs } = this.settings;
    const connection: Connection = new Connection(
      { WebSocket, url: realtimeUrl(this.settings.url, token, this.seq), heartbeatMs, maxMissed, connectTimeoutMs },
      {
        onMessage: (message) => {
          if (connection === this.connection) this.receive(message);
        },
        onClose: (info) => this.closed(connection, info),
        onError: (error) => this.emit('error', error),
      },
    );
    this.connection = connection;
    connection.open();
  }

  private closed(connection: Connection, info: CloseInfo): void {
    if (connection !== this.connection) return;
    this.connection = null;
    this.lastClose = info;
    if (!info.wasReady) this.failures++;
    if (!this.running) {
      this.setStatus({ status: 'closed', code: info.code, reason: info.reason });
      return;
    }
    if (info.authFailure && !this.tokens.canRefresh) {
      this.emit('error', new Error(`Herald refused the token (${info.code}) and there is no getToken() to renew it`));
    }
    this.retry(info.code, info.reason);
  }

  private retry(code: number, reason: string): void {
    const hold = this.retryHold;
    const delay = this.retryOverrideMs ?? backoffDelay(this.failures, this.settings.backoff);
    this.retryOverrideMs = null;
    this.retryHold = null;
    this.setStatus({
      status: 'closed',
      code,
      reason,
      attempt: this.failures,
      ...(hold ? {} : { retryInMs: delay }),
    });
    const generation = this.generation;
    const start = () => {
      this.cancelRetry = null;
      const WebSocket = this.webSocketConstructor();
      if (generation === this.generation && this.running && WebSocket) void this.open(WebSocket);
    };
    if (hold) {
      void hold.then(start, start); // close() meanwhile bumps the generation
      return;
    }
    const handle = setTimeout(start, delay);
    this.cancelRetry = () => clearTimeout(handle);
  }

  private receive(message: ServerMessage): void {
    switch (message.type) {
      case 'ready':
        this.ready(message);
        return;
      case 'notification': {
        const { type: _, ...rest } = message;
        this.notification({ ...rest, readAt: rest.readAt ?? null });
        return;
      }
      case 'unread':
        this.setUnread(message.unreadCount);
        return;
      case 'error':
        this.emit('error', new HeraldRealtimeError(message.code, message.message));
        return;
      case 'pong':
        return;
    }
  }

  private ready(message: Extract<ServerMessage, { type: 'ready' }>): void {
    this.failures = 0;
    this.lastClose = null;
    this.readyUserId = message.userId;
    if (this.seq !== null && message.lastSeq < this.seq) {
      // Our resume point is beyond the server's history (its store was reset): this socket would
      // skip every seq up to ours. Start over from the server's last seq on a new socket.
      this.seq = message.lastSeq;
      this.retryOverrideMs = 0;
      this.connection?.close(CloseCode.normal, 'resume point beyond the server history; resyncing');
      return;
    }
    // Without `after` the server starts live from `lastSeq`: that is the resume point from now on.
    this.seq ??= message.lastSeq;
    this.readySeq = message.lastSeq;
    this.setStatus({ status: 'open' });
    this.setUnread(message.unreadCount);
    const outbox = this.outbox;
    this.outbox = [];
    for (const m of outbox) this.sendOrQueue(m);
    this.settleWaiters(null);
  }

  private notification(n: HeraldNotification): void {
    if (this.seq !== null && n.seq <= this.seq) return;
    this.seq = n.seq;
    if (this.settings.autoAck) this.sendOrQueue({ type: 'ack', seq: n.seq });
    if (this.recentIds.has(n.id)) return;
    this.recentIds.add(n.id);
    this.emit('notification', n);
    // `ready.unreadCount` already counts the backlog (seq <= ready.lastSeq); only newer ones add to it.
    // An item that replaces another may not: the `unread` frame the server sends after it says.
    if (n.readAt === null && n.seq > this.readySeq && n.replaces === undefined) this.setUnread((this.unread ?? 0) + 1);
  }

  private setUnread(count: number): void {
    this.unread = count;
    this.emit('unread', count);
  }

  private setStatus(state: ConnectionState): void {
    this.currentStatus = state.status;
    this.emit('connection', state);
  }

  private sendOrQueue(message: ClientMessage): void {
    if (this.connection?.isReady && this.connection.send(message)) return;
    this.outbox.push(message);
    if (this.outbox.length > MAX_OUTBOX) this.outbox.shift();
  }

  private settleWaiters(error: Error | null): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      if (error) w.reject(error);
      else w.resolve();
    }
  }
}

function settle(o: HeraldClientOptions): Settings {
  if (typeof o.url !== 'string' || !o.url) throw new TypeError('HeraldClient needs `url`');
  const baseMs = positiveInt(o.reconnect?.baseMs ?? DEFAULT_BACKOFF.baseMs, 'reconnect.baseMs');
  const maxMs = positiveInt(o.reconnect?.maxMs ?? DEFAULT_BACKOFF.maxMs, 'reconnect.maxMs');
  if (maxMs < baseMs) throw new TypeError('reconnect.maxMs must be at least reconnect.baseMs');
  return {
    url: o.url,
    WebSocket: o.WebSocket,
    fetch: o.fetch,
    autoAck: o.autoAck ?? true,
    backoff: { baseMs, maxMs },
    heartbeatMs: nonNegativeInt(o.heartbeat?.intervalMs ?? 25_000, 'heartbeat.intervalMs'),
    maxMissed: positiveInt(o.heartbeat?.maxMissed ?? 2, 'heartbeat.maxMissed'),
    connectTimeoutMs: positiveInt(o.connectTimeoutMs ?? 15_000, 'connectTimeoutMs'),
    refreshAfterFailures: positiveInt(o.refreshTokenAfterFailures ?? 2, 'refreshTokenAfterFailures'),
  };
}

function nonNegativeInt(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new TypeError(`${name} must be a non-negative integer, not ${v}`);
  return v;
}

function positiveInt(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`${name} must be a positive integer, not ${v}`);
  return v;
}
