/**
 * One real-time connection of one user: the protocol of docs/realtime.md, independent of the
 * WebSocket library.
 *
 * Promise: within a connection seqs strictly increase — none is sent twice, none skipped.
 * How: `lastSent` is the only cursor. While the session syncs from the store (the initial replay,
 * or filling a gap), live frames are held back; after each store read the held frames are sent if
 * they continue the sequence, and any gap sends the session back to the store, which holds every
 * committed seq (a seq is taken in the same transaction that writes its entry, under a per-user
 * lock, so a visible seq N+1 implies a visible N). The session is registered for live frames
 * before its first store read, so nothing committed after that read can be missed.
 *
 * Bounded: at most MAX_HELD live frames are held during a sync (beyond that they are dropped and
 * the sync reads the store again, which has them); replay is paced by the socket (each page waits until the previous one is written out);
 * a live frame finding more than `maxBufferedBytes` queued (beyond what the paced replay itself
 * has in flight) closes the socket with 4408, and the client resumes from its last seq. During a
 * sync, the live frames held back count as queued while a replayed page waits for the network: a
 * client that stopped reading in the middle of a replay (its page is never written out, so the sync
 * waits for ever and every live frame is held instead of written) is closed with 4408 too, once
 * those frames pass `maxBufferedBytes`. A client that reads is not: its page leaves at once, and
 * frames held while the store is read do not count.
 *
 * Order: `ready` is the first frame. Client frames that arrive before it are kept (at most
 * MAX_EARLY_FRAMES) and handled right after it; an unread count pushed before it is sent after it.
 *
 * Client frames are budgeted: a token bucket of CLIENT_FRAMES.burst frames refilled at
 * CLIENT_FRAMES.perSecond, plus CLIENT_FRAMES.perNotification frames earned for every notification
 * sent (its ack and its read), so a client acknowledging a long replay never runs out. A frame over
 * the budget closes the socket with 1008 "too many frames" and is not handled; the socket is not
 * read any more (what a flooding client has sent after it costs nothing) and is cut FLOOD_LINGER_MS
 * later, without waiting for the client's close frame, which is queued behind its flood.
 * Reads are not written here: a `read` adds its seq to this session's pending set (at most
 * MAX_PENDING_READS; a read that finds it full is a flood too), and `deps.readsPending` asks the
 * caller to collect them with `takeReads` — batched per user, see src/realtime/read-coalescer.ts.
 * Reads accepted before a close are still written.
 */
import type { InboxStore } from './ports.ts';
import { CLIENT_FRAMES, CLOSE, MAX_EARLY_FRAMES, MAX_PENDING_READS, notificationFrame } from './realtime-protocol.ts';

/** What the session needs of a socket (the shape of a `ws` WebSocket, so it needs no wrapper). */
export interface RealtimeSocket {
  send(data: Buffer, options: { binary: false }, done?: (err?: Error) => void): void;
  readonly bufferedAmount: number;
  close(code: number, reason: string): void;
  /** Stops reading from the client (frames already received may still arrive). */
  pause(): void;
  /** Cuts the connection at once. */
  terminate(): void;
}

/** A live notification for one user, serialized once for all of that user's sockets. */
export interface LiveFrame {
  seq: number;
  frame: Buffer;
}

/** A session's reads waiting to be written; taken by whoever batches them. */
export interface ReadSource {
  /** Removes and returns up to `max` pending read seqs. */
  takeReads(max: number): number[];
  /** Reads taken from this source could not be written: the client is told to try again. */
  readFailed(): void;
}

export interface SessionDeps {
  inbox: Pick<InboxStore, 'inboxState' | 'listInboxAfter'>;
  /** Records that the client received `seq` (batched by the caller). */
  ack(userId: string, seq: number): void;
  /** `source` has read seqs waiting: the caller takes them with `takeReads` and writes them. */
  readsPending(userId: string, source: ReadSource): void;
  maxBufferedBytes: number;
  /** Entries read from the store per page while syncing; default 500. */
  pageSize?: number;
  /** Milliseconds of a monotonic clock (for the frame budget); default performance.now. */
  now?: () => number;
}

const TOO_MANY_FRAMES = 'too many frames';
/** After a close for too many frames, how long the close frame has to reach the client before the connection is cut. */
const FLOOD_LINGER_MS = 1000;

const PONG = Buffer.from('{"type":"pong"}');
/** Every frame is JSON text, sent from a Buffer that was serialized once. */
const TEXT = { binary: false } as const;
const MAX_BAD_FRAMES = 10;
/** Live frames held back during a sync; beyond this they are dropped and read from the store instead. */
const MAX_HELD = 1000;

/** Header of an unmasked server frame carrying `n` bytes (RFC 6455, 5.2): counted in `bufferedAmount`. */
function frameHeaderBytes(n: number): number {
  return n < 126 ? 2 : n < 65_536 ? 4 : 10;
}

export class RealtimeSession implements ReadSource {
  private lastSent = 0;
  private syncing = true;
  private held: LiveFrame[] = [];
  /** Bytes of the held frames (with their frame headers). */
  private heldBytes = 0;
  /** Live frames were dropped while syncing: the sync must read the store once more. */
  private overflowed = false;
  private badFrames = 0;
  /** Bytes of replayed frames (with their frame headers) not yet handed to the network. */
  private replayBytes = 0;
  /** `ready` has been sent. */
  private isReady = false;
  /** Client frames received before `ready`, handled after it. */
  private early: string[] | null = null;
  /** The last frame pushed before `ready` (an unread count), sent after it. */
  private earlyPush: Buffer | null = null;
  /** Frame budget: bucket tokens, when they were last topped up, and frames earned by notifications. */
  private tokens: number = CLIENT_FRAMES.burst;
  private tokensAt: number;
  private earned = 0;
  /** Read seqs waiting to be written (created at the first read). */
  private pendingReads: Set<number> | null = null;
  closed = false;

  constructor(
    readonly userId: string,
    private readonly socket: RealtimeSocket,
    private readonly deps: SessionDeps,
  ) {
    this.tokensAt = this.now();
  }

  /** Sends `ready`, then what the client sent meanwhile is handled, then everything after `after` (if given), then goes live. */
  async start(after: number | null): Promise<void> {
    const { lastSeq, unreadCount } = await this.deps.inbox.inboxState(this.userId);
    if (this.closed) return;
    // An `after` beyond the user's history (say, the store was reset) would silence the socket.
    this.lastSent = Math.min(after ?? lastSeq, lastSeq);
    this.write(Buffer.from(JSON.stringify({ type: 'ready', userId: this.userId, lastSeq, unreadCount })));
    this.isReady = true;
    if (this.earlyPush) this.writeLive(this.earlyPush);
    const early = this.early ?? [];
    this.early = null;
    this.earlyPush = null;
    for (const data of early) if (!this.closed) this.handle(data);
    await this.sync();
  }

  /** A live notification of this user. */
  deliver(f: LiveFrame): void {
    if (this.closed || f.seq <= this.lastSent) return;
    if (this.syncing) {
      if (this.held.length < MAX_HELD) this.hold(f);
      else this.overflowed = true;
      // The replay's page has not left for the network and the client falls further behind: slow.
      if (
        this.replayBytes > 0 &&
        this.socket.bufferedAmount - this.replayBytes + this.heldBytes > this.deps.maxBufferedBytes
      ) {
        this.close(CLOSE.slowConsumer, 'slow consumer; reconnect with after');
      }
    } else if (f.seq === this.lastSent + 1) {
      if (this.writeLive(f.frame)) this.sent(f.seq);
    } else {
      this.hold(f);
      this.syncing = true;
      void this.sync();
    }
  }

  /** Live frames may have been missed (not by gap: none may come): reads what is after `lastSent` from the store. */
  resync(): void {
    if (this.closed || this.syncing || !this.isReady) return;
    this.syncing = true;
    void this.sync();
  }

  private hold(f: LiveFrame): void {
    this.held.push(f);
    this.heldBytes += f.frame.length + frameHeaderBytes(f.frame.length);
  }

  /** Sends a frame built for all of the user's sockets (an unread count: before `ready`, only the last one is kept). */
  push(frame: Buffer): void {
    if (this.closed) return;
    if (this.isReady) this.writeLive(frame);
    else this.earlyPush = frame;
  }

  /** A text frame from the client (binary ones are passed as ''). */
  handleFrame(data: string): void {
    if (this.closed) return;
    if (!this.spend()) {
      this.flooded();
      return;
    }
    if (this.isReady) {
      this.handle(data);
      return;
    }
    this.early ??= [];
    if (this.early.length >= MAX_EARLY_FRAMES) this.flooded();
    else this.early.push(data);
  }

  takeReads(max: number): number[] {
    const pending = this.pendingReads;
    if (!pending) return [];
    const out: number[] = [];
    for (const seq of pending) {
      if (out.length >= max) break;
      out.push(seq);
    }
    if (out.length === pending.size) this.pendingReads = null;
    else for (const seq of out) pending.delete(seq);
    return out;
  }

  readFailed(): void {
    this.writeLive(
      Buffer.from(
        JSON.stringify({ type: 'error', code: 'HERALD_ERR_UNAVAILABLE', message: 'could not mark read; try again' }),
      ),
    );
  }

  private handle(data: string): void {
    let msg: { type?: unknown; seq?: unknown };
    try {
      msg = JSON.parse(data) as typeof msg;
    } catch {
      this.reject('HERALD_ERR_MALFORMED_JSON', 'the frame is not JSON');
      return;
    }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg)) {
      this.reject('HERALD_ERR_VALIDATION', 'the frame must be a JSON object');
      return;
    }
    switch (msg.type) {
      case 'ping':
        this.writeLive(PONG);
        return;
      case 'ack':
      case 'read': {
        const seq = msg.seq;
        if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
          this.reject('HERALD_ERR_VALIDATION', `${msg.type}.seq must be a positive integer`);
          return;
        }
        if (msg.type === 'ack') this.deps.ack(this.userId, seq);
        else this.read(seq);
        return;
      }
      default:
        this.reject('HERALD_ERR_VALIDATION', 'type must be "ack", "read" or "ping"');
        return;
    }
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.held = [];
    this.heldBytes = 0;
    this.early = null;
    this.earlyPush = null;
    this.socket.close(code, reason);
  }

  /** Closes with 1008 "too many frames", stops reading, and cuts the connection a little later. */
  private flooded(): void {
    this.close(CLOSE.policy, TOO_MANY_FRAMES);
    this.socket.pause();
    setTimeout(() => this.socket.terminate(), FLOOD_LINGER_MS).unref();
  }

  /** Adds `seq` to the pending reads; a read that finds them full closes the socket (a flood). */
  private read(seq: number): void {
    this.pendingReads ??= new Set();
    if (!this.pendingReads.has(seq)) {
      if (this.pendingReads.size >= MAX_PENDING_READS) {
        this.flooded();
        return;
      }
      this.pendingReads.add(seq);
    }
    this.deps.readsPending(this.userId, this);
  }

  /** Takes one client frame from the budget: an earned one first, else a bucket token. */
  private spend(): boolean {
    if (this.earned > 0) {
      this.earned--;
      return true;
    }
    const now = this.now();
    const elapsed = Math.max(0, now - this.tokensAt);
    this.tokensAt = now;
    this.tokens = Math.min(CLIENT_FRAMES.burst, this.tokens + (elapsed * CLIENT_FRAMES.perSecond) / 1000);
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** A notification with `seq` was sent: the cursor moves, and the client earns its ack and read. */
  private sent(seq: number): void {
    this.lastSent = seq;
    this.earned = Math.min(this.earned + CLIENT_FRAMES.perNotification, CLIENT_FRAMES.maxEarned);
  }

  private now(): number {
    return this.deps.now ? this.deps.now() : performance.now();
  }

  private async sync(): Promise<void> {
    const pageSize = this.deps.pageSize ?? 500;
    try {
      while (!this.closed) {
        const page = await this.deps.inbox.listInboxAfter(this.userId, this.lastSent, pageSize);
        let written: Promise<void> | null = null;
        for (const item of page) {
          if (item.seq <= this.lastSent || this.closed) continue;
          written = this.write(notificationFrame(item), true);
          this.sent(item.seq);
        }
        // Pacing: the next page is read only when this one has left for the network.
        if (written) await written;
        if (page.length === pageSize) continue;
        if (this.releaseHeld()) return;
      }
    } catch {
      this.close(CLOSE.restart, 'store unavailable; reconnect with after');
    }
  }

  /** Sends held frames that continue the sequence; false if a gap remains (sync again). */
  private releaseHeld(): boolean {
    const held = this.held.sort((a, b) => a.seq - b.seq);
    this.held = [];
    this.heldBytes = 0;
    if (this.overflowed) {
      // Some live frames were dropped: everything after lastSent is in the store, read it from there.
      this.overflowed = false;
      return false;
    }
    for (let i = 0; i < held.length; i++) {
      const f = held[i] as LiveFrame;
      if (f.seq <= this.lastSent) continue;
      if (f.seq !== this.lastSent + 1) {
        for (const rest of held.slice(i)) this.hold(rest);
        return false;
      }
      this.write(f.frame);
      this.sent(f.seq);
    }
    this.syncing = false;
    return true;
  }

  /** Writes a frame; with `track`, resolves when it has been handed to the network. */
  private write(frame: Buffer, track: true): Promise<void>;
  private write(frame: Buffer): void;
  private write(frame: Buffer, track?: true): Promise<void> | void {
    if (this.closed) return track ? Promise.resolve() : undefined;
    if (!track) return this.socket.send(frame, TEXT);
    const bytes = frame.length + frameHeaderBytes(frame.length);
    this.replayBytes += bytes;
    return new Promise((resolve) =>
      this.socket.send(frame, TEXT, () => {
        this.replayBytes -= bytes;
        resolve();
      }),
    );
  }

  /**
   * A live write; a socket that cannot keep up is closed (the client resumes from its seq). What
   * the paced replay has queued itself does not count: a pong or an unread count written during a
   * replay must not cut off a client that is reading.
   */
  private writeLive(frame: Buffer): boolean {
    if (this.closed) return false;
    if (this.socket.bufferedAmount - this.replayBytes > this.deps.maxBufferedBytes) {
      this.close(CLOSE.slowConsumer, 'slow consumer; reconnect with after');
      return false;
    }
    this.socket.send(frame, TEXT);
    return true;
  }

  private reject(code: string, message: string): void {
    if (++this.badFrames >= MAX_BAD_FRAMES) {
      this.close(CLOSE.policy, 'too many malformed frames');
      return;
    }
    this.writeLive(Buffer.from(JSON.stringify({ type: 'error', code, message })));
  }
}
