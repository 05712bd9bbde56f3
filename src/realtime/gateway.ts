/**
 * The WebSocket gateway: authenticates upgrades on /v1/realtime, runs one RealtimeSession per
 * socket, hands each frame routed to this process (LiveFrames: a user's in-app entries, serialized
 * once, and unread counts) to that user's sockets, reports its sockets to Presence as `node` (each
 * socket before its first store read, so that a frame routed after that read finds it; everything
 * once per heartbeat), and closes every socket with 1012 on shutdown.
 *
 * Limits: a user holds at most `maxSocketsPerUser` sockets in this process; the next upgrade is
 * answered `429` HERALD_ERR_TOO_MANY_CONNECTIONS. The check and the registration of the new socket
 * happen in one synchronous step after the token is verified (`handleUpgrade` completes
 * synchronously: no `verifyClient`), so concurrent upgrades cannot slip past it together.
 * Client frames cost their session's frame budget; acks are written in batches for all users
 * (GroupCommit), reads in batches per user (ReadCoalescer) — neither costs a statement per frame.
 *
 * Memory per socket is the `ws` socket plus one small session object; no per-socket timers (one
 * sweep pings every socket and ends those that did not answer the previous ping or whose token
 * expired).
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Auth } from '../api/auth.ts';
import { HeraldError } from '../core/errors.ts';
import type { HeraldEmitter } from '../core/events.ts';
import { GroupCommit } from '../core/group-commit.ts';
import type { InboxStore } from '../core/ports.ts';
import type { LiveFrames, Presence, RoutedFrame } from '../core/ports-realtime.ts';
import { CLOSE } from '../core/realtime-protocol.ts';
import { RealtimeSession, type SessionDeps } from '../core/realtime-session.ts';
import { ReadCoalescer } from './read-coalescer.ts';

export interface GatewayOptions {
  /** HERALD_WS_MAX_BUFFER_BYTES: queued bytes beyond which a socket is a slow consumer. */
  maxBufferedBytes: number;
  /** HERALD_WS_HEARTBEAT_MS: ping interval, and how often presence is refreshed. */
  heartbeatMs: number;
  /** This process's name among gateways (Presence, LiveFrames): unique per process. */
  node: string;
  /** HERALD_MAX_SOCKETS_PER_USER: sockets one user may hold in this process. */
  maxSocketsPerUser: number;
  /** Largest client frame; default 4096. */
  maxFrameBytes?: number;
  /** A topic notification was accepted somewhere (LiveHandler.topicAccepted); default: nothing to do. */
  topicAccepted?: () => void;
}

export interface GatewayLog {
  warn(obj: object, msg: string): void;
}

interface Conn {
  id: string;
  ws: WebSocket;
  session: RealtimeSession;
  exp: number;
  alive: boolean;
}

const PATH = '/v1/realtime';
/** How often a gateway checks that presence still holds its reports (API.md: a socket counts within 5 s). */
const PRESENCE_CHECK_MS = 5_000;
/** How long acks gather before they are written (a delivery shows `delivered` that much later). */
const ACK_LINGER_MS = 50;

export class Gateway {
  private readonly wss: WebSocketServer;
  private readonly byUser = new Map<string, Set<Conn>>();
  private readonly acks: GroupCommit<{ userId: string; seq: number }, undefined>;
  private readonly reads: ReadCoalescer;
  private readonly sweep: NodeJS.Timeout;
  private readonly check: NodeJS.Timeout;
  private readonly sessionDeps: SessionDeps;
  private nextId = 0;
  private closing = false;

  constructor(
    private readonly inbox: InboxStore,
    private readonly presence: Presence,
    private readonly live: LiveFrames,
    private readonly auth: Auth,
    private readonly events: HeraldEmitter,
    private readonly log: GatewayLog,
    private readonly options: GatewayOptions,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxFrameBytes ?? 4096,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.acks = new GroupCommit(
      async (batch) => {
        await this.inbox.markDelivered(batch);
        return batch.map(() => undefined);
      },
      // Nobody waits on an ack's commit: gathering them for ACK_LINGER_MS makes a steady stream of
      // acks a few statements a second instead of one per round trip.
      { maxBatch: 1000, maxPending: 100_000, parallel: 1, lingerMs: ACK_LINGER_MS },
    );
    // After each batch of a user's reads, one unread count for every socket of the user.
    this.reads = new ReadCoalescer(this.inbox, (u, count) =>
      this.events.emit('inbox:unread', { userId: u, unreadCount: count }),
    );
    // One for every session: nothing in it is per socket (made per socket, its two closures cost ~0.5 KB each socket).
    this.sessionDeps = {
      inbox: this.inbox,
      ack: (u, seq) => void this.acks.submit({ userId: u, seq }).catch(() => {}),
      readsPending: (u, source) => this.reads.pending(u, source),
      maxBufferedBytes: this.options.maxBufferedBytes,
    };
    this.sweep = setInterval(() => this.heartbeat(), options.heartbeatMs);
    this.sweep.unref();
    this.check = setInterval(() => this.checkPresence(), Math.min(PRESENCE_CHECK_MS, options.heartbeatMs));
    this.check.unref();
  }

  /** Starts receiving the frames routed to this process (before any socket is accepted). */
  async start(): Promise<void> {
    await this.live.subscribe(this.options.node, {
      frames: (frames) => this.onFrames(frames),
      resync: () => this.resyncAll(),
      topicAccepted: () => this.options.topicAccepted?.(),
    });
  }

  /** Takes over WebSocket upgrades of `server` for /v1/realtime. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.upgrade(req, socket, head).catch((e: unknown) => this.refuse(socket, toError(e)));
    });
  }

  /** Users with at least one socket on this process (fan-out pushes their new entries live). */
  connectedUsers(): string[] {
    return [...this.byUser.keys()];
  }

  get sockets(): number {
    let n = 0;
    for (const set of this.byUser.values()) n += set.size;
    return n;
  }

  /** Frames routed here: a notification goes, serialized once, to every socket of its user; so does an unread count. */
  private onFrames(frames: readonly RoutedFrame[]): void {
    for (const f of frames) {
      const conns = this.byUser.get(f.userId);
      if (!conns) continue;
      if (f.seq === null) for (const c of conns) c.session.push(f.frame);
      else {
        const frame = { seq: f.seq, frame: f.frame };
        for (const c of conns) c.session.deliver(frame);
      }
    }
  }

  /** Closes every socket with 1012 (clients reconnect elsewhere, resuming from their seq). */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sweep);
    clearInterval(this.check);
    const all = [...this.byUser.values()].flatMap((s) => [...s]);
    for (const c of all) c.session.close(CLOSE.restart, 'server restarting; reconnect with after');
    await Promise.all([this.acks.drain(), this.reads.drain()]);
    await new Promise<void>((r) => this.wss.close(() => r()));
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== PATH)
      return this.refuse(socket, new HeraldError('HERALD_ERR_NOT_FOUND', `no WebSocket at ${url.pathname}`));
    if (this.closing)
      return this.refuse(socket, new HeraldError('HERALD_ERR_UNAVAILABLE', 'server restarting', { retryAfter: 1 }));
    const token = url.searchParams.get('token') ?? /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!token) return this.refuse(socket, new HeraldError('HERALD_ERR_UNAUTHORIZED', 'missing token'));
    const { userId, exp } = await this.auth.userTokenClaims(token);
    if (this.closing)
      return this.refuse(socket, new HeraldError('HERALD_ERR_UNAVAILABLE', 'server restarting', { retryAfter: 1 }));
    const afterParam = url.searchParams.get('after');
    let after: number | null = null;
    if (afterParam !== null) {
      after = /^\d{1,15}$/.test(afterParam) ? Number(afterParam) : Number.NaN;
      if (Number.isNaN(after)) {
        return this.refuse(
          socket,
          new HeraldError('HERALD_ERR_VALIDATION', 'after: must be a non-negative integer', {
            details: [{ field: 'after', message: 'must be a non-negative integer' }],
          }),
        );
      }
    }
    // From here to accept() nothing awaits: the count below includes every socket accepted before.
    const held = this.byUser.get(userId)?.size ?? 0;
    if (held >= this.options.maxSocketsPerUser) {
      return this.refuse(
        socket,
        new HeraldError(
          'HERALD_ERR_TOO_MANY_CONNECTIONS',
          `user ${userId} already holds ${held} WebSockets (HERALD_MAX_SOCKETS_PER_USER); close one first`,
          { retryAfter: 1 },
        ),
      );
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, userId, exp, after));
  }

  /** Answers an upgrade with an HTTP error (and counts it). */
  private refuse(socket: Duplex, e: HeraldError): void {
    this.events.emit('realtime:refused', { status: e.status });
    refuse(socket, e);
  }

  private accept(ws: WebSocket, userId: string, exp: number, after: number | null): void {
    const session = new RealtimeSession(userId, ws, this.sessionDeps);
    const conn: Conn = { id: String(++this.nextId), ws, session, exp, alive: true };
    // Registered before the session's first store read: live entries from now on are held, not missed.
    let set = this.byUser.get(userId);
    if (!set) {
      set = new Set();
      this.byUser.set(userId, set);
    }
    set.add(conn);
    this.events.emit('realtime:opened', { userId });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // A closed session ignores frames; do not decode what a flooding client still sends.
      if (!session.closed) session.handleFrame(isBinary ? '' : data.toString('utf8'));
    });
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('error', () => {
      // 'close' follows; a protocol error (an oversized frame → 1009, invalid UTF-8 in a text
      // frame → 1007) is the client's.
    });
    ws.on('close', (code: number) => {
      session.closed = true;
      this.events.emit('realtime:closed', { userId, code });
      const s = this.byUser.get(userId);
      s?.delete(conn);
      if (s && s.size === 0) this.byUser.delete(userId);
      void this.presence.closed(this.options.node, userId).catch(() => {});
    });
    // Counted in presence before the first store read: a frame routed after that read reaches this socket.
    // If presence cannot be written (Redis down), the socket is served anyway: nothing can be routed
    // to any gateway meanwhile, and when Redis is back the next heartbeat reports this socket and
    // every session catches up from the store (LiveHandler.resync, or checkPresence).
    const counted = this.presence.opened(this.options.node, userId).catch((e: unknown) => {
      this.log.warn({ err: e, userId }, 'presence could not count a new socket; the next heartbeat will');
    });
    counted
      .then(() => session.start(after))
      .catch((e: unknown) => {
        this.log.warn({ err: e, userId }, 'real-time session failed to start');
        session.close(CLOSE.restart, 'could not start; reconnect with after');
      });
  }

  /**
   * Presence lost this node's reports (Redis flushed or restarted empty): report everything now, and
   * every session catches up from the store (frames routed meanwhile did not come here).
   */
  private checkPresence(): void {
    if (this.byUser.size === 0 || this.closing) return;
    this.presence
      .knows(this.options.node)
      .then(async (known) => {
        if (known || this.closing) return;
        await this.presence.refresh(this.options.node, this.held());
        this.resyncAll();
      })
      .catch(() => {
        // Redis unreachable: the next check (or heartbeat) tries again.
      });
  }

  /** Frames routed here may have been missed: every session catches up from the store. */
  private resyncAll(): void {
    for (const set of this.byUser.values()) for (const c of set) c.session.resync();
  }

  /** Sockets held per user. */
  private held(): Map<string, number> {
    const held = new Map<string, number>();
    for (const [userId, set] of this.byUser) held.set(userId, set.size);
    return held;
  }

  private heartbeat(): void {
    const now = Date.now() / 1000;
    for (const set of this.byUser.values()) {
      for (const c of set) {
        if (c.exp <= now) {
          c.session.close(CLOSE.unauthorized, 'token expired');
        } else if (!c.alive) {
          c.ws.terminate();
        } else {
          c.alive = false;
          c.ws.ping();
        }
      }
    }
    // One report of everything this process holds (one call, not one per socket).
    this.presence
      .refresh(this.options.node, this.held())
      .catch((e: unknown) => this.log.warn({ err: e }, 'presence heartbeat failed; retried at the next one'));
  }
}

function toError(e: unknown): HeraldError {
  return e instanceof HeraldError ? e : new HeraldError('HERALD_ERR_INTERNAL', 'upgrade failed', { cause: e });
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Answers an upgrade request with an HTTP error and closes the connection. */
function refuse(socket: Duplex, e: HeraldError): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify(e.toJSON());
  const retryAfter = e.retryAfter === undefined ? '' : `Retry-After: ${e.retryAfter}\r\n`;
  socket.end(
    `HTTP/1.1 ${e.status} ${REASONS[e.status] ?? 'Error'}\r\nContent-Type: application/json\r\n${retryAfter}` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
