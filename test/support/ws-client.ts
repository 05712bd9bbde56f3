/**
 * Test clients for the real-time gateway (docs/realtime.md): a `ws` socket that records every
 * server message in order and lets a test wait for conditions on them, a probe for refused
 * upgrades, and helpers that post in-app notifications and read a user's inbox state.
 *
 * Every wait has a deadline and fails with what was seen so far; a wait also fails at once when the
 * socket closes before its condition holds.
 */

import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import WebSocket from 'ws';
import { uuidv7 } from '../../src/core/ids.ts';
import type { NewNotification, Priority } from '../../src/core/types.ts';
import type { TestHerald } from './herald.ts';

export type ServerMessage = { type: string; [field: string]: any };

export interface Closed {
  code: number;
  reason: string;
}

export interface RealtimeClient {
  ws: WebSocket;
  /** Every server message, in arrival order (non-JSON text is recorded as `{type: '(not json)', text}`). */
  readonly messages: ServerMessage[];
  /** The `notification` messages, in arrival order. */
  notifications(): ServerMessage[];
  /** Messages of `type`, in arrival order. */
  ofType(type: string): ServerMessage[];
  /** Set once the socket has closed. */
  closedWith: Closed | null;
  /** Resolves when the socket closes. */
  readonly closed: Promise<Closed>;
  /** Resolves with the `ready` message (and checks it was the first message). */
  ready(timeoutMs?: number): Promise<ServerMessage>;
  /** Resolves with the first message from index `from` on that satisfies `pred`. */
  waitFor(pred: (m: ServerMessage) => boolean, what: string, timeoutMs?: number, from?: number): Promise<ServerMessage>;
  /** Resolves with the first `n` notifications once at least `n` have arrived. */
  waitForNotifications(n: number, timeoutMs?: number): Promise<ServerMessage[]>;
  /** Sends a JSON value (or exactly the given text / bytes). */
  send(frame: unknown): void;
  /** Closes (1000) and waits for the close to complete. */
  close(): Promise<Closed>;
}

export interface ConnectOptions {
  after?: number | string;
  /** Default true; false makes the client ignore the server's pings (a dead peer). */
  autoPong?: boolean;
  /** Other query parameters, or a path other than /v1/realtime. */
  path?: string;
}

export function realtimeUrl(baseUrl: string, token: string | null, options: ConnectOptions = {}): string {
  const u = new URL(options.path ?? '/v1/realtime', baseUrl.replace(/^http/, 'ws'));
  if (token !== null) u.searchParams.set('token', token);
  if (options.after !== undefined) u.searchParams.set('after', String(options.after));
  return u.toString();
}

/** Opens a socket (resolves once the upgrade succeeded; messages are recorded from the first byte). */
export function connect(baseUrl: string, token: string, options: ConnectOptions = {}): Promise<RealtimeClient> {
  const ws = new WebSocket(realtimeUrl(baseUrl, token, options), { autoPong: options.autoPong ?? true });
  const messages: ServerMessage[] = [];
  const checks = new Set<() => void>();
  const recheck = () => {
    for (const c of [...checks]) c();
  };
  let closedWith: Closed | null = null;
  const closed = new Promise<Closed>((resolve) => {
    ws.on('close', (code, reason) => {
      closedWith = { code, reason: reason.toString() };
      client.closedWith = closedWith;
      resolve(closedWith);
      recheck();
    });
  });
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? `(binary ${(data as Buffer).length} bytes)` : data.toString();
    let m: ServerMessage;
    try {
      m = JSON.parse(text) as ServerMessage;
    } catch {
      m = { type: '(not json)', text };
    }
    messages.push(m);
    recheck();
  });

  function until<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = () => {
        checks.delete(run);
        clearTimeout(timer);
      };
      const run = () => {
        const v = check();
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (closedWith) {
          done();
          reject(
            new Error(`socket closed (${closedWith.code} ${closedWith.reason}) while waiting for ${what}; ${seen()}`),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${seen()}`));
      }, timeoutMs);
      checks.add(run);
      run();
    });
  }

  function seen(): string {
    const n = messages.filter((m) => m.type === 'notification');
    const others = messages.filter((m) => m.type !== 'notification').slice(0, 5);
    const seqs = n.length ? `seqs ${n[0]?.seq}…${n[n.length - 1]?.seq}` : 'no seqs';
    return `seen ${messages.length} messages (${n.length} notifications, ${seqs}; others ${JSON.stringify(others)})`;
  }

  const client: RealtimeClient = {
    ws,
    messages,
    closedWith: null,
    closed,
    notifications: () => messages.filter((m) => m.type === 'notification'),
    ofType: (type) => messages.filter((m) => m.type === type),
    async ready(timeoutMs = 10_000) {
      const m = await until(() => messages[0], 'the first message', timeoutMs);
      expect(m.type, `first message ${JSON.stringify(m)}`).toBe('ready');
      return m;
    },
    waitFor(pred, what, timeoutMs = 10_000, from = 0) {
      return until(() => messages.slice(from).find(pred), what, timeoutMs);
    },
    waitForNotifications(n, timeoutMs = 20_000) {
      return until(
        () => {
          const list = messages.filter((m) => m.type === 'notification');
          return list.length >= n ? list.slice(0, n) : undefined;
        },
        `${n} notifications`,
        timeoutMs,
      );
    },
    send(frame) {
      ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
    },
    async close() {
      if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000);
      return closed;
    },
  };

  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`upgrade refused: HTTP ${res.statusCode}`));
      res.resume();
      ws.terminate();
    });
    ws.once('error', (e) => reject(e));
  });
}

/** Opens a socket and waits for its `ready`. */
export async function connectReady(
  baseUrl: string,
  token: string,
  options: ConnectOptions = {},
): Promise<{ client: RealtimeClient; ready: ServerMessage }> {
  const client = await connect(baseUrl, token, options);
  return { client, ready: await client.ready() };
}

/** Tries an upgrade that the server must refuse; resolves with the HTTP answer. */
export function refusedUpgrade(
  baseUrl: string,
  token: string | null,
  options: ConnectOptions = {},
): Promise<{ status: number; text: string; json: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(realtimeUrl(baseUrl, token, options));
    ws.once('open', () => {
      ws.terminate();
      reject(new Error(`the upgrade to ${realtimeUrl(baseUrl, token, options)} was accepted`));
    });
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => {
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
        ws.terminate();
      });
    });
    ws.once('error', (e) => reject(e));
  });
}

export interface NotifyOptions {
  title?: string;
  body?: string;
  data?: Record<string, unknown>;
  category?: string;
  priority?: string;
}

/** POSTs one in-app notification to `userId`; resolves with its id. */
export async function notify(t: TestHerald, userId: string, options: NotifyOptions = {}): Promise<string> {
  const r = await t.api('POST', '/v1/notifications', {
    to: [userId],
    category: options.category ?? 'test.realtime',
    priority: options.priority ?? 'normal',
    channels: ['in_app'],
    title: options.title ?? 'Hello',
    body: options.body ?? 'A real-time test notification',
    data: options.data ?? {},
  });
  expect(r.status, JSON.stringify(r.json)).toBe(202);
  return r.json.id as string;
}

/** POSTs `n` notifications to `userId`, `concurrency` at a time; resolves with their ids. */
export async function notifyMany(
  t: TestHerald,
  userId: string,
  n: number,
  options: NotifyOptions & { concurrency?: number } = {},
): Promise<string[]> {
  const ids: string[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      ids[i] = await notify(t, userId, { ...options, data: { ...options.data, i } });
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, options.concurrency ?? 16) }, worker));
  return ids;
}

/**
 * Commits `n` in-app notifications to `userId` the way the ingest does (store `accept`, batches of
 * 500, then announced on the bus), without an HTTP request each: for long backlogs. The worker
 * delivers them to the inbox as usual. Resolves with their ids, in commit order.
 */
export async function seedNotifications(
  t: TestHerald,
  userId: string,
  n: number,
  options: NotifyOptions = {},
): Promise<string[]> {
  const { store, bus } = t.herald.adapters;
  const ids: string[] = [];
  for (let start = 0; start < n; start += 500) {
    const batch: NewNotification[] = [];
    for (let i = start; i < Math.min(n, start + 500); i++) {
      const now = new Date();
      batch.push({
        id: uuidv7(now.getTime()),
        createdAt: now,
        idempotencyKey: null,
        requestHash: null,
        to: [userId],
        category: options.category ?? 'test.realtime',
        priority: (options.priority ?? 'normal') as Priority,
        channels: ['in_app'],
        title: options.title ?? 'Hello',
        body: options.body ?? 'A real-time test notification',
        data: { ...options.data, i },
        sendAt: null,
        groupKey: null,
      });
    }
    const out = await store.accept(batch);
    const jobs = out.flatMap((o) => (o.kind === 'accepted' ? o.jobs : []));
    expect(jobs).toHaveLength(batch.length);
    await bus.publish(jobs);
    ids.push(...batch.map((b) => b.id));
  }
  return ids;
}

/** The user's highest inbox seq (0 when empty). */
export async function lastInboxSeq(t: TestHerald, userId: string): Promise<number> {
  const r = await t.api('GET', `/v1/users/${userId}/inbox?limit=1`);
  expect(r.status).toBe(200);
  return (r.json.items[0]?.seq as number | undefined) ?? 0;
}

/** Waits until the user's inbox holds seq `seq` (every notification posted so far is in it). */
export async function waitForInboxSeq(t: TestHerald, userId: string, seq: number, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const last = await lastInboxSeq(t, userId);
    if (last >= seq) return;
    if (Date.now() > end) throw new Error(`inbox of ${userId} reached seq ${last}, not ${seq}, in ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Large notifications: 20,000 three-byte characters of body and 30 KB of data, ≈ 90 KB a frame. */
export const LARGE = { body: '€'.repeat(20_000), data: { blob: 'd'.repeat(30_000) } };
export const LARGE_FRAME_BYTES = 90_000;

/**
 * What the kernel can hold for a client that stops reading (Linux): the server's send buffer, which
 * grows up to the tcp_wmem maximum, and the client's receive buffer, which stays at the tcp_rmem
 * default while nothing is read. 8 MB when unknown.
 */
export function kernelBufferBytes(): number {
  const field = (file: string, i: number) =>
    Number(readFileSync(`/proc/sys/net/ipv4/${file}`, 'utf8').trim().split(/\s+/)[i]);
  try {
    const bytes = field('tcp_wmem', 2) + field('tcp_rmem', 1);
    return Number.isFinite(bytes) && bytes > 0 ? bytes : 8 << 20;
  } catch {
    return 8 << 20;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Asserts `list` is exactly the notifications with seqs `from`, `from + 1`, … (`count` of them),
 * in order, and (when given) with exactly the ids `ids` (in any order: concurrent posts commit in
 * any order).
 */
export function expectConsecutive(
  list: readonly ServerMessage[],
  from: number,
  count: number,
  ids?: readonly string[],
  what = 'notifications',
) {
  const seqs = list.map((m) => m.seq as number);
  const expected = Array.from({ length: count }, (_, i) => from + i);
  const length = Math.max(seqs.length, count);
  const firstBad = Array.from({ length }, (_, i) => i).find((i) => seqs[i] !== expected[i]);
  if (firstBad !== undefined) {
    const around = JSON.stringify(seqs.slice(Math.max(0, firstBad - 3), firstBad + 4));
    expect.fail(
      `${what}: expected seqs ${from}…${from + count - 1} (${count}), got ${seqs.length}; first mismatch at ` +
        `index ${firstBad} (got ${seqs[firstBad]}, expected ${expected[firstBad]}); around it: ${around}`,
    );
  }
  const got = list.map((m) => m.id as string);
  expect(new Set(got).size, `${what}: distinct ids`).toBe(count);
  if (ids) expect([...got].sort(), `${what}: the ids posted`).toEqual([...ids].sort());
}
