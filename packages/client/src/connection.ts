/**
 * One WebSocket to `/v1/realtime`, from opening to closing; reconnecting is the client's job.
 *
 * Promises:
 * - `onClose` is called exactly once per connection, however it ends: a close frame, a socket
 *   that went away (1006), a refused upgrade (1006), a missing `ready` after `connectTimeoutMs`,
 *   missed heartbeats, or `close()`/`drop()` by the owner. After it no other handler is called.
 * - Frames are parsed into `ServerMessage`s; frames that are not JSON objects with a known
 *   `type` are reported through `onError` and skipped (unknown types are skipped silently:
 *   the server may add some).
 * - While open it sends `{"type":"ping"}` every `heartbeatMs`; when `maxMissed` pings in a row
 *   got no frame back at all, the socket is deemed dead and dropped without waiting for a close
 *   handshake that would never come.
 */
import {
  type ClientMessage,
  CloseCode,
  type ServerMessage,
  type WebSocketConstructor,
  type WebSocketLike,
} from './types.ts';

const OPEN = 1;

export interface ConnectionOptions {
  WebSocket: WebSocketConstructor;
  url: string;
  heartbeatMs: number;
  maxMissed: number;
  connectTimeoutMs: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** The socket got to `ready`. */
  wasReady: boolean;
  /** The close looks like a refused token: 4401, or a 401 the platform let us see at the upgrade. */
  authFailure: boolean;
}

export interface ConnectionHandlers {
  onMessage(message: ServerMessage): void;
  onClose(info: CloseInfo): void;
  onError(error: Error): void;
}

export class Connection {
  private socket: WebSocketLike | null = null;
  private finished = false;
  private ready = false;
  private sawHttp401 = false;
  private unanswered = 0;
  private readonly timers = new Set<() => void>();

  constructor(
    private readonly options: ConnectionOptions,
    private readonly handlers: ConnectionHandlers,
  ) {}

  /** Opens the socket. A constructor that throws ends the connection with 1006 (asynchronously). */
  open(): void {
    let socket: WebSocketLike;
    try {
      socket = new this.options.WebSocket(this.options.url);
    } catch (e) {
      this.handlers.onError(asError(e, 'could not open the WebSocket'));
      this.after(0, () => this.finish(CloseCode.abnormal, 'could not open the WebSocket'));
      return;
    }
    this.socket = socket;
    socket.onopen = () => this.startHeartbeat();
    socket.onmessage = (event) => this.receive(event.data);
    socket.onerror = (event) => {
      const error = errorOf(event);
      if (/\b401\b/.test(error.message)) this.sawHttp401 = true;
      this.handlers.onError(error);
    };
    socket.onclose = (event) => this.finish(event.code, event.reason ?? '');
    this.after(this.options.connectTimeoutMs, () => {
      if (!this.ready) this.drop(`no ready within ${this.options.connectTimeoutMs} ms`);
    });
  }

  get isReady(): boolean {
    return this.ready && !this.finished;
  }

  /** Sends a frame if the socket is open; false otherwise. */
  send(message: ClientMessage): boolean {
    const socket = this.socket;
    if (this.finished || !socket || socket.readyState !== OPEN) return false;
    try {
      socket.send(JSON.stringify(message));
      return true;
    } catch (e) {
      this.handlers.onError(asError(e, 'send failed'));
      return false;
    }
  }

  /** Closes with a close frame and reports the close now, without waiting for the handshake. */
  close(code: number = CloseCode.normal, reason = ''): void {
    if (this.finished) return;
    const socket = this.detach();
    try {
      socket?.close(code, reason);
    } catch {
      // Already closing or closed: nothing to do.
    }
    this.finish(code, reason);
  }

  /** Drops the socket without a close handshake and reports a 1006 close now. */
  drop(reason: string): void {
    if (this.finished) return;
    const socket = this.detach();
    try {
      if (socket?.terminate) socket.terminate();
      else socket?.close(4000, reason.slice(0, 100));
    } catch {
      // Nothing left to close.
    }
    this.finish(CloseCode.abnormal, reason);
  }

  private receive(data: unknown): void {
    if (this.finished) return;
    this.unanswered = 0;
    const text = textOf(data);
    let message: unknown;
    try {
      message = text === null ? undefined : JSON.parse(text);
    } catch {
      message = undefined;
    }
    const parsed = parseServerMessage(message);
    if (parsed === 'unknown') return;
    if (parsed === null) {
      this.handlers.onError(new Error(`Herald sent a frame the client cannot read: ${String(text).slice(0, 200)}`));
      return;
    }
    if (parsed.type === 'ready') this.ready = true;
    this.handlers.onMessage(parsed);
  }

  private startHeartbeat(): void {
    const { heartbeatMs, maxMissed } = this.options;
    if (heartbeatMs <= 0 || this.finished) return;
    const tick = () => {
      if (this.unanswered >= maxMissed) {
        this.drop(`no answer to ${this.unanswered} pings`);
        return;
      }
      if (this.send({ type: 'ping' })) this.unanswered++;
      this.after(heartbeatMs, tick);
    };
    this.after(heartbeatMs, tick);
  }

  private after(ms: number, fn: () => void): void {
    const handle = setTimeout(() => {
      this.timers.delete(cancel);
      fn();
    }, ms);
    const cancel = () => clearTimeout(handle);
    this.timers.add(cancel);
  }

  private detach(): WebSocketLike | null {
    const socket = this.socket;
    if (socket) {
      socket.onopen = null;
      socket.onmessage = null;
      socket.onclose = null;
      // Keep a no-op error handler: some sockets throw on an 'error' nobody listens to.
      socket.onerror = () => {};
    }
    return socket;
  }

  private finish(code: number, reason: string): void {
    if (this.finished) return;
    this.finished = true;
    this.detach();
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    const authFailure = code === CloseCode.tokenExpired || (!this.ready && this.sawHttp401);
    this.handlers.onClose({ code, reason, wasReady: this.ready, authFailure });
  }
}

/** A server frame, `null` if it is not one the protocol allows, `'unknown'` for a well-formed frame of a newer type. */
export function parseServerMessage(m: unknown): ServerMessage | null | 'unknown' {
  if (!m || typeof m !== 'object' || Array.isArray(m)) return null;
  const o = m as Record<string, unknown>;
  const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
  switch (o['type']) {
    case 'ready':
      return typeof o['userId'] === 'string' && isInt(o['lastSeq']) && isInt(o['unreadCount'])
        ? (o as ServerMessage)
        : null;
    case 'notification':
      return isInt(o['seq']) && typeof o['id'] === 'string' ? (o as ServerMessage) : null;
    case 'unread':
      return isInt(o['unreadCount']) ? (o as ServerMessage) : null;
    case 'pong':
      return { type: 'pong' };
    case 'error':
      return { type: 'error', code: String(o['code'] ?? ''), message: String(o['message'] ?? '') };
    default:
      return typeof o['type'] === 'string' ? 'unknown' : null;
  }
}

function textOf(data: unknown): string | null {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return null;
}

function errorOf(event: unknown): Error {
  const e = event as { error?: unknown; message?: unknown } | null;
  if (e?.error instanceof Error) return e.error;
  const message = typeof e?.message === 'string' && e.message ? e.message : 'WebSocket error';
  return new Error(message);
}

function asError(e: unknown, fallback: string): Error {
  return e instanceof Error ? e : new Error(`${fallback}: ${String(e)}`);
}
