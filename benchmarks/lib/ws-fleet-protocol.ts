/**
 * What the benchmark process and its WebSocket client process (lib/ws-fleet-process.ts) say to
 * each other over the IPC channel: one request, one answer, matched by id.
 */

/** A clock shared by every process of the machine (CLOCK_MONOTONIC), in milliseconds. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same run plan. Returns [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ConnectRequest {
  cmd: 'connect';
  /** Herald's base URL (http://127.0.0.1:port). */
  url: string;
  /** One socket per user. */
  users: string[];
  /** HERALD_JWT_SECRET, to sign each user's token. */
  secret: string;
  /** Connects in flight at once. */
  concurrency: number;
  /** Reconnect (with after = last seq seen) when the server closes a socket or it breaks. */
  reconnect: boolean;
  /** Send {"type":"ack"} for each notification. */
  ack: boolean;
  /** Bound on the whole call. */
  timeoutMs: number;
}

export interface ConnectResult {
  opened: number;
  failed: number;
  /** From the first connect to the last `ready`. */
  ms: number;
  /** Per socket: from creating the WebSocket to its `ready` frame. */
  connectMs: { p50: number; p99: number; max: number };
  errors: string[];
}

export interface ChaosRequest {
  cmd: 'chaos';
  /** Drops happen at uniformly random moments within this window from now. */
  durationMs: number;
  /** Drops per client (each: terminate, stay away 0..maxOfflineMs, reconnect with after). */
  dropsPerClient: number;
  maxOfflineMs: number;
  seed: number;
}

export interface AwaitSeqsRequest {
  cmd: 'awaitSeqs';
  /** Per user: how many notifications were posted to it (so seqs 1..n are expected). */
  expected: Record<string, number>;
  timeoutMs: number;
}

export interface SeqVerification {
  /** Every user reached its expected count before the timeout. */
  complete: boolean;
  waitedMs: number;
  users: number;
  expected: number;
  /** Distinct seqs received in 1..expected. */
  received: number;
  /** Seqs in 1..expected never received. */
  gaps: number;
  /** Receipts of a seq the user had already received. */
  duplicates: number;
  /** Receipts whose seq was not the previous one + 1 (and not a duplicate). */
  outOfOrder: number;
  /** Seqs above the expected count (notifications nobody posted). */
  extra: number;
  /** A few users with gaps, for the report. */
  examples: { user: string; expected: number; missing: number[] }[];
}

export interface AwaitSamplesRequest {
  cmd: 'awaitSamples';
  /** Latency samples (notifications carrying data.sentAt) to wait for, in total. */
  count: number;
  timeoutMs: number;
}

export interface AwaitSamplesResult {
  reached: boolean;
  samples: number;
  /** monotonicMs() of the latest sample. */
  lastAt: number;
}

export interface Receipts {
  ids: string[];
  at: Float64Array;
}

export interface FleetStatus {
  clients: number;
  /** Sockets past `ready`. */
  open: number;
  notifications: number;
  samples: number;
  drops: number;
  reconnects: number;
  /** Closes the clients did not ask for, by close code. */
  unexpectedCloses: Record<string, number>;
  /** Reconnect attempts that did not reach `ready` (each is retried). */
  reconnectFailures: number;
  /** Successful reconnects: from creating the WebSocket to its `ready` frame (NaN when none). */
  reconnectReadyMs: { p50: number; p99: number; max: number };
  errorFrames: number;
  /** Resident memory of the client process. */
  rss: number;
}

export type FleetRequest =
  | ConnectRequest
  | ChaosRequest
  | AwaitSeqsRequest
  | AwaitSamplesRequest
  | { cmd: 'status' }
  /** Latency samples (ms, POST → receipt) so far; `clear` starts a new series. */
  | { cmd: 'samples'; clear: boolean }
  /** The notification id and receipt time (monotonicMs) of each sample so far. */
  | { cmd: 'receipts' }
  /** Closes every socket normally (1000), waiting up to timeoutMs. */
  | { cmd: 'disconnect'; timeoutMs: number };

export type FleetMessage = { id: number; request: FleetRequest };
export type FleetAnswer = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
