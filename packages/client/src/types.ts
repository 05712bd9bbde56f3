/**
 * The shapes the client exchanges with Herald (API.md "In-app inbox" and "Real time",
 * docs/realtime.md), its options and its events. Timestamps stay ISO 8601 strings as they
 * arrive on the wire.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type Priority = 'critical' | 'high' | 'normal' | 'bulk';

/** One in-app notification of the user, as the inbox lists it and the socket pushes it. */
export interface HeraldNotification {
  /** Per-user number that only grows; the resume point. */
  seq: number;
  /** The notification id: the same whatever connection carries it. */
  id: string;
  category: string;
  priority: Priority;
  title: string | null;
  body: string | null;
  data: JsonValue;
  createdAt: string;
  /** `null` while unread. */
  readAt: string | null;
  /**
   * Aggregated by groupKey (docs/realtime.md "Aggregated notifications"): how many notifications the
   * item holds, and the newest one's fields. Absent on notifications without a groupKey.
   */
  count?: number;
  latest?: HeraldLatest;
  /** The seq of the item this one replaces: drop that one from any list you keep. */
  replaces?: number;
}

/** The newest notification of an aggregated item. */
export interface HeraldLatest {
  id: string;
  category: string;
  priority: Priority;
  title: string | null;
  body: string | null;
  data: JsonValue;
  createdAt: string;
}

export type InboxItem = HeraldNotification;

/** `GET /v1/users/{id}/inbox`: newest first; `nextBefore` is the `before` of the next page. */
export interface InboxPage {
  items: InboxItem[];
  unreadCount: number;
  nextBefore: number | null;
}

export type ReadSelection = { seqs: number[] } | { upToSeq: number } | { all: true };

// ---- wire messages -------------------------------------------------------------------------

export type ServerMessage =
  | { type: 'ready'; userId: string; lastSeq: number; unreadCount: number }
  | ({ type: 'notification' } & HeraldNotification)
  | { type: 'unread'; unreadCount: number }
  | { type: 'pong' }
  | { type: 'error'; code: string; message: string };

export type ClientMessage = { type: 'ack'; seq: number } | { type: 'read'; seq: number } | { type: 'ping' };

/** Close codes of docs/realtime.md. */
export const CloseCode = {
  normal: 1000,
  /** Not a frame: the socket went away without a close handshake (also a refused upgrade). */
  abnormal: 1006,
  tooManyMalformedFrames: 1008,
  frameTooLarge: 1009,
  serverRestarting: 1012,
  tokenExpired: 4401,
  slowConsumer: 4408,
} as const;

// ---- the platform's WebSocket and fetch, structurally --------------------------------------

/** A handler property whose parameter is checked bivariantly, so `ws` and DOM sockets both fit. */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/** What the client uses of a WebSocket: the browser's, Node 22's global, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: destroy the socket without a close handshake. */
  terminate?(): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface FetchResponseLike {
  readonly ok: boolean;
  readonly status: number;
  text(): Promise<string>;
}

export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
) => Promise<FetchResponseLike>;

// ---- options and events --------------------------------------------------------------------

export interface HeraldClientOptions {
  /**
   * Herald's base URL: `wss://herald.example.com` (or `https://…`; a trailing `/v1/realtime` is
   * allowed). The socket uses the ws(s) form, the inbox helpers the http(s) form. In a browser a
   * relative URL resolves against the page.
   */
  url: string;
  /** A user token (HS256 JWT from `POST /v1/users/{id}/tokens`). Give this, `getToken`, or both. */
  token?: string;
  /** Returns a fresh user token; called when none is held, before it expires, and after auth failures. */
  getToken?: () => Promise<string>;
  /** The user id for the inbox helpers. Default: the token's `sub`, else `ready.userId`. */
  userId?: string;
  /** Default `globalThis.WebSocket`. Node 20 has none: pass `WebSocket` from the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Resume point: the last seq already seen. Default: none, start live from now. */
  after?: number;
  /** Send `{"type":"ack"}` for each new notification. Default `true`. */
  autoAck?: boolean;
  /** Reconnect backoff, exponential with full jitter. Defaults `baseMs: 500`, `maxMs: 30000`. */
  reconnect?: { baseMs?: number; maxMs?: number };
  /** Client pings. Defaults `intervalMs: 25000` (0 turns pings off), `maxMissed: 2` unanswered pings before the socket is deemed dead. */
  heartbeat?: { intervalMs?: number; maxMissed?: number };
  /** A socket that has not said `ready` this long after it was opened is dropped. Default `15000`. */
  connectTimeoutMs?: number;
  /** After this many sockets in a row closed before `ready`, every reconnect first gets a new token (when `getToken` is set). Default `2`. */
  refreshTokenAfterFailures?: number;
  /** How many recent notification ids are remembered for dropping duplicates. Default `1000`. */
  recentIdsCapacity?: number;
}

export type ConnectionStatus = 'connecting' | 'open' | 'closed';

export interface ConnectionState {
  status: ConnectionStatus;
  /** `closed`: the close code (1006 when the socket went away without one). */
  code?: number;
  /** `closed`: the close reason, if any. */
  reason?: string;
  /** Sockets in a row that closed before `ready`, not counting this one (0 on the first try). */
  attempt?: number;
  /** `closed`: when the next try starts, unless `close()` was called. */
  retryInMs?: number;
}

export interface HeraldClientEvents {
  notification: HeraldNotification;
  unread: number;
  connection: ConnectionState;
  error: Error;
}
