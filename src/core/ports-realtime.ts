/**
 * The real-time ports (the others are in ports.ts): who is connected across gateway processes, and
 * how live frames reach the processes that hold their users' sockets. Adapters: src/realtime.
 */

/**
 * Who is connected, across gateway processes: how many sockets each gateway process (a `node`,
 * named uniquely per process) holds for each user. A gateway reports a socket when it opens — and
 * the promise resolves only once the report is visible to every process, so that a frame routed
 * after it (LiveFrames) finds the socket; the gateway reads the store only after that — and when it
 * closes; once per heartbeat it refreshes everything it holds in one call. A node that stops
 * refreshing (it died) stops counting `ttlMs` after its last refresh (adapter option, at most 60 s).
 */
export interface Presence {
  readonly kind: string;
  /** `node` holds one more socket of `userId`. */
  opened(node: string, userId: string): Promise<void>;
  /** `node` holds one socket fewer of `userId` (the user was seen now). */
  closed(node: string, userId: string): Promise<void>;
  /** `node`'s heartbeat: the sockets it holds now, per user (replaces what it reported before). */
  refresh(node: string, held: ReadonlyMap<string, number>): Promise<void>;
  /**
   * Whether presence still holds `node`'s reports: false once they are gone although the node runs
   * (Redis lost its data, or the node's reports expired while it stalled). Then frames routed by
   * presence missed this node's users meanwhile: the gateway reports everything again at once and its
   * sessions catch up from the store. Cheap: a gateway asks every few seconds.
   */
  knows(node: string): Promise<boolean>;
  /** The nodes whose reports count now (gateways that are alive, holding sockets or not). */
  nodes(): Promise<string[]>;
  /** The live nodes holding sockets of each of `userIds` (a user with none is absent). */
  nodesOf(userIds: readonly string[]): Promise<Map<string, string[]>>;
  /** Across every live node. `lastSeen`: the last open, close or heartbeat of the user (null: never seen). */
  get(userId: string): Promise<{ online: boolean; sockets: number; lastSeen: Date | null }>;
  close(): Promise<void>;
}

/**
 * A frame for one user's sockets, serialized once: a notification (`seq` set: sessions put it in
 * sequence, see src/core/realtime-session.ts) or an unread count (`seq` null).
 */
export interface RoutedFrame {
  userId: string;
  seq: number | null;
  frame: Buffer;
}

/** What a gateway does with the frames routed to its process. */
export interface LiveHandler {
  frames(frames: readonly RoutedFrame[]): void;
  /**
   * Frames may have been missed (the connection to the other processes was lost and is back): every
   * session catches up from the store, which holds every committed seq.
   */
  resync(): void;
  /**
   * A topic notification was accepted (by this process or another): its subscribers with sockets
   * here may have entries to read on (fan-out on read, src/store/sql-topics.ts), which this process's
   * sessions then get live.
   */
  topicAccepted(): void;
}

/**
 * Real-time fan-out between processes: a worker's committed in-app entries and a user's new unread
 * count go to the gateways that hold that user's sockets (through Presence), and to no other — not
 * a broadcast to every node. Best effort by design: the store is the record, and a frame that does
 * not arrive (a gateway restarting, Redis down) is read from the store by the session (at the next
 * frame's gap, at `resync`, or when the client reconnects with `after`). `publish` never throws.
 */
export interface LiveFrames {
  readonly kind: string;
  publish(frames: readonly RoutedFrame[]): Promise<void>;
  /**
   * Tells every live gateway node, this process's included, that a topic notification was accepted
   * (`LiveHandler.topicAccepted`): a topic's subscribers are only known to the store, so this one
   * signal goes to every node, where each reads for the users it holds. Best effort; never throws.
   */
  topicAccepted(): Promise<void>;
  /** Registers this process's gateway as `node`: frames routed to it go to `handler`. */
  subscribe(node: string, handler: LiveHandler): Promise<void>;
  /** Frames this process received from other processes for its sockets (metrics). */
  readonly received: number;
  close(): Promise<void>;
}
