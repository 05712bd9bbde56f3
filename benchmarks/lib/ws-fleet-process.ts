/**
 * The WebSocket clients of the real-time benchmarks, in their own process (started by
 * lib/ws-fleet.ts; commands over IPC), so that neither Herald nor the benchmark's HTTP sender
 * shares their event loop.
 *
 * One socket per user. Each client keeps every seq it received, so the fleet can tell gaps,
 * duplicates and out-of-order receipts across reconnects, and the latency of every notification
 * that carries `data.sentAt` (monotonicMs() of its POST, a clock shared by processes). A client
 * reconnects with `after` = the highest seq it has seen. Every wait is bounded.
 */
import WebSocket from 'ws';
import { percentile } from './stats.ts';
import { signUserToken } from './user-token.ts';
import {
  type AwaitSamplesRequest,
  type AwaitSamplesResult,
  type AwaitSeqsRequest,
  type ChaosRequest,
  type ConnectRequest,
  type ConnectResult,
  type FleetAnswer,
  type FleetMessage,
  type FleetRequest,
  type FleetStatus,
  monotonicMs,
  type SeqVerification,
  seededRandom,
} from './ws-fleet-protocol.ts';

interface Client {
  user: string;
  ws: WebSocket | null;
  /** Bumped for each socket: events of a replaced or dropped socket are ignored. */
  gen: number;
  ready: boolean;
  /** Whether the client should be connected (false while dropped on purpose or after disconnect). */
  wanted: boolean;
  lastSeq: number;
  seen: Set<number>;
  duplicates: number;
  outOfOrder: number;
  reconnectAttempts: number;
}

const MAX_RECONNECT_ATTEMPTS = 50;
const READY_TIMEOUT_MS = 30_000;

const clients = new Map<string, Client>();
let settings = { url: '', secret: '', reconnect: false, ack: false };
let samples = new Float64Array(1 << 14);
let sampleCount = 0;
/** Per sample: the notification id and the receipt time (monotonicMs), for matching with the sender's records. */
let sampleIds: string[] = [];
let sampleAts = new Float64Array(1 << 14);
let lastSampleAt = 0;
let notifications = 0;
let drops = 0;
let reconnects = 0;
let reconnectFailures = 0;
let errorFrames = 0;
const unexpectedCloses: Record<string, number> = {};
/** Per successful reconnect: from creating the WebSocket to its `ready` frame. */
const reconnectMs: number[] = [];
const chaosTimers = new Set<NodeJS.Timeout>();
let sampleWaiter: { count: number; resolve: () => void } | null = null;

function addSample(ms: number, at: number, id: string): void {
  if (sampleCount === samples.length) {
    const bigger = new Float64Array(samples.length * 2);
    bigger.set(samples);
    samples = bigger;
    const biggerAts = new Float64Array(samples.length);
    biggerAts.set(sampleAts);
    sampleAts = biggerAts;
  }
  sampleIds[sampleCount] = id;
  sampleAts[sampleCount] = at;
  samples[sampleCount++] = ms;
  lastSampleAt = at;
  if (sampleWaiter && sampleCount >= sampleWaiter.count) {
    sampleWaiter.resolve();
    sampleWaiter = null;
  }
}

function onNotification(
  c: Client,
  msg: { seq?: unknown; id?: unknown; data?: { sentAt?: unknown } },
  ws: WebSocket,
): void {
  const at = monotonicMs();
  notifications++;
  const seq = Number(msg.seq);
  if (c.seen.has(seq)) {
    c.duplicates++;
  } else {
    if (seq !== c.lastSeq + 1) c.outOfOrder++;
    c.seen.add(seq);
    if (seq > c.lastSeq) c.lastSeq = seq;
  }
  const sentAt = msg.data?.sentAt;
  if (typeof sentAt === 'number') addSample(at - sentAt, at, String(msg.id));
  if (settings.ack) ws.send(`{"type":"ack","seq":${seq}}`);
}

/**
 * Opens a socket for `c` (after = its last seq) and resolves at its `ready` frame. On failure the
 * socket is terminated and detached from `c` before the promise rejects.
 */
function open(c: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    const gen = ++c.gen;
    c.ready = false;
    const token = signUserToken(settings.secret, c.user);
    const url = `${settings.url.replace(/^http/, 'ws')}/v1/realtime?token=${token}&after=${c.lastSeq}`;
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: READY_TIMEOUT_MS });
    c.ws = ws;
    let settled = false;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!error) return resolve();
      if (c.gen === gen) {
        c.gen++;
        c.ws = null;
        c.ready = false;
      }
      ws.terminate();
      reject(error);
    };
    const timer = setTimeout(() => settle(new Error(`no ready frame within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    ws.on('message', (data: Buffer) => {
      if (c.gen !== gen) return;
      let msg: { type?: string; seq?: unknown; id?: unknown; data?: { sentAt?: unknown } };
      try {
        msg = JSON.parse(data.toString('utf8'));
      } catch {
        errorFrames++;
        return;
      }
      if (msg.type === 'notification') onNotification(c, msg, ws);
      else if (msg.type === 'ready') {
        c.ready = true;
        settle();
      } else if (msg.type === 'error') errorFrames++;
    });
    ws.on('error', (e: Error) => settle(e));
    ws.on('close', (code: number) => {
      if (!settled) return settle(new Error(`closed (${code}) before ready`));
      if (c.gen !== gen) return;
      c.ws = null;
      c.ready = false;
      if (!c.wanted) return;
      unexpectedCloses[code] = (unexpectedCloses[code] ?? 0) + 1;
      if (settings.reconnect) scheduleReconnect(c, 100 + Math.random() * 400);
    });
  });
}

function scheduleReconnect(c: Client, delayMs: number): void {
  const t = setTimeout(() => {
    chaosTimers.delete(t);
    if (!c.wanted || c.ws) return;
    reconnects++;
    const start = performance.now();
    open(c).then(
      () => {
        reconnectMs.push(performance.now() - start);
        c.reconnectAttempts = 0;
      },
      () => {
        reconnectFailures++;
        if (c.wanted && ++c.reconnectAttempts < MAX_RECONNECT_ATTEMPTS) {
          scheduleReconnect(c, 200 * Math.min(10, c.reconnectAttempts));
        }
      },
    );
  }, delayMs);
  chaosTimers.add(t);
}

async function connect(r: ConnectRequest): Promise<ConnectResult> {
  settings = { url: r.url, secret: r.secret, reconnect: r.reconnect, ack: r.ack };
  const todo: Client[] = [];
  for (const user of r.users) {
    let c = clients.get(user);
    if (!c) {
      c = {
        user,
        ws: null,
        gen: 0,
        ready: false,
        wanted: true,
        lastSeq: 0,
        seen: new Set(),
        duplicates: 0,
        outOfOrder: 0,
        reconnectAttempts: 0,
      };
      clients.set(user, c);
    }
    c.wanted = true;
    if (!c.ws) todo.push(c);
  }
  const deadline = performance.now() + r.timeoutMs;
  const times: number[] = [];
  const errors: string[] = [];
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  let last = t0;
  const lane = async () => {
    while (next < todo.length && performance.now() < deadline) {
      const c = todo[next++] as Client;
      const start = performance.now();
      try {
        await open(c);
        last = performance.now();
        times.push(last - start);
      } catch (e) {
        failed++;
        c.wanted = false;
        if (errors.length < 5) errors.push(`${c.user}: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(r.concurrency, todo.length)) }, lane));
  failed += todo.length - next;
  return {
    opened: times.length,
    failed,
    ms: last - t0,
    connectMs: { p50: percentile(times, 50), p99: percentile(times, 99), max: times.length ? Math.max(...times) : 0 },
    errors,
  };
}

function chaos(r: ChaosRequest): { scheduled: number } {
  const random = seededRandom(r.seed);
  let scheduled = 0;
  for (const c of clients.values()) {
    for (let i = 0; i < r.dropsPerClient; i++) {
      scheduled++;
      const t = setTimeout(() => {
        chaosTimers.delete(t);
        if (!c.wanted || !c.ws || !c.ready) return;
        drops++;
        c.gen++; // the dropped socket's close is not "unexpected"
        c.ws.terminate();
        c.ws = null;
        c.ready = false;
        scheduleReconnect(c, random() * r.maxOfflineMs);
      }, random() * r.durationMs);
      chaosTimers.add(t);
    }
  }
  return { scheduled };
}

/** Stops scheduling drops; clients that are away get reconnected now. */
function calm(): void {
  for (const t of chaosTimers) clearTimeout(t);
  chaosTimers.clear();
  for (const c of clients.values()) if (c.wanted && !c.ws) scheduleReconnect(c, 0);
}

async function awaitSeqs(r: AwaitSeqsRequest): Promise<SeqVerification> {
  calm();
  const t0 = performance.now();
  const done = () => {
    for (const [user, n] of Object.entries(r.expected)) {
      const c = clients.get(user);
      if (n > 0 && (!c || c.lastSeq < n)) return false;
    }
    return true;
  };
  let complete = done();
  while (!complete && performance.now() - t0 < r.timeoutMs) {
    await new Promise((ok) => setTimeout(ok, 100));
    if (chaosTimers.size === 0) {
      for (const c of clients.values()) if (c.wanted && !c.ws) scheduleReconnect(c, 0);
    }
    complete = done();
  }
  const waitedMs = performance.now() - t0;
  // Anything still in flight (a late duplicate) gets a moment to show up before the count.
  await new Promise((ok) => setTimeout(ok, 500));
  const v: SeqVerification = {
    complete,
    waitedMs,
    users: 0,
    expected: 0,
    received: 0,
    gaps: 0,
    duplicates: 0,
    outOfOrder: 0,
    extra: 0,
    examples: [],
  };
  const users = new Set([...Object.keys(r.expected), ...clients.keys()]);
  for (const user of users) {
    const n = r.expected[user] ?? 0;
    const c = clients.get(user);
    v.users++;
    v.expected += n;
    const missing: number[] = [];
    for (let s = 1; s <= n; s++) if (!c?.seen.has(s)) missing.push(s);
    v.received += n - missing.length;
    v.gaps += missing.length;
    if (c) {
      v.duplicates += c.duplicates;
      v.outOfOrder += c.outOfOrder;
      for (const s of c.seen) if (s > n) v.extra++;
    }
    if (missing.length && v.examples.length < 5) v.examples.push({ user, expected: n, missing: missing.slice(0, 10) });
  }
  return v;
}

async function awaitSamples(r: AwaitSamplesRequest): Promise<AwaitSamplesResult> {
  if (sampleCount < r.count) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        sampleWaiter = null;
        resolve();
      }, r.timeoutMs);
      sampleWaiter = {
        count: r.count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }
  return { reached: sampleCount >= r.count, samples: sampleCount, lastAt: lastSampleAt };
}

function status(): FleetStatus {
  let open = 0;
  for (const c of clients.values()) if (c.ready) open++;
  return {
    clients: clients.size,
    open,
    notifications,
    samples: sampleCount,
    drops,
    reconnects,
    unexpectedCloses: { ...unexpectedCloses },
    reconnectFailures,
    reconnectReadyMs: {
      p50: percentile(reconnectMs, 50),
      p99: percentile(reconnectMs, 99),
      max: reconnectMs.reduce((m, x) => Math.max(m, x), 0),
    },
    errorFrames,
    rss: process.memoryUsage.rss(),
  };
}

async function disconnect(timeoutMs: number): Promise<{ closed: number }> {
  for (const t of chaosTimers) clearTimeout(t);
  chaosTimers.clear();
  const closing: Promise<void>[] = [];
  for (const c of clients.values()) {
    c.wanted = false;
    const ws = c.ws;
    if (!ws) continue;
    closing.push(new Promise((r) => ws.once('close', () => r())));
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'bench done');
    else ws.terminate();
  }
  await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, timeoutMs))]);
  for (const c of clients.values()) c.ws?.terminate();
  const closed = closing.length;
  clients.clear();
  return { closed };
}

async function handle(r: FleetRequest): Promise<unknown> {
  switch (r.cmd) {
    case 'connect':
      return connect(r);
    case 'chaos':
      return chaos(r);
    case 'awaitSeqs':
      return awaitSeqs(r);
    case 'awaitSamples':
      return awaitSamples(r);
    case 'status':
      return status();
    case 'samples': {
      const out = samples.slice(0, sampleCount);
      if (r.clear) {
        sampleCount = 0;
        sampleIds = [];
      }
      return out;
    }
    case 'receipts':
      return { ids: sampleIds.slice(0, sampleCount), at: sampleAts.slice(0, sampleCount) };
    case 'disconnect':
      return disconnect(r.timeoutMs);
  }
}

process.on('message', (m: FleetMessage) => {
  handle(m.request).then(
    (result) => process.send?.({ id: m.id, ok: true, result } satisfies FleetAnswer),
    (e: unknown) =>
      process.send?.({ id: m.id, ok: false, error: String((e as Error)?.stack ?? e) } satisfies FleetAnswer),
  );
});
// The benchmark went away: so do its clients.
process.on('disconnect', () => process.exit(0));
