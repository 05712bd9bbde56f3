/**
 * Acceptance test of "Herald core": crash recovery with a real process and a real SIGKILL.
 *
 * Herald runs as a child process (`node --import tsx src/cli.ts start`, the pid we kill is Herald
 * itself) and delivers webhook notifications to a local receiver that answers slowly. In the middle
 * of the work the process is SIGKILLed, then started again on the same data (PGlite data dir, or
 * the same PostgreSQL database). We prove:
 * - every accepted notification (202) reaches the receiver, none is lost (guarantees 1 and 4);
 * - every request is correctly signed;
 * - the only duplicates are deliveries that were in flight at the kill: at most the lane's send
 *   concurrency, each with the same webhook-id (and body) as its original, so a receiver that
 *   de-duplicates by webhook-id sees every notification exactly once (guarantee 2);
 * - every request the receiver still held unanswered at the kill comes again (on the embedded
 *   store, right after the restart: its data directory is locked to one process, so the restarted
 *   Herald knows that every lease it finds belonged to the dead one);
 * - every delivery ends `sent`: a sample read back through the API while Herald runs, then every
 *   row read from the store itself after a clean SIGTERM stop.
 *
 * Two cases per store: SIGKILL while deliveries flow (all 2,000 accepted first), and SIGKILL while
 * POSTs flow (every POST answered 202 before the kill must be delivered).
 *
 * Each case prints one `crash[<store>] …` line with the duplicate count and the timings.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, onTestFailed } from 'vitest';
import { openEmbeddedStore, openPostgresStore } from '../src/store/store-sql.ts';
import { freshPostgresUrl } from './support/databases.ts';
import { eventually, TEST_API_KEY, TEST_EGRESS_ALLOW, TEST_JWT_SECRET, TEST_WEBHOOK_SECRET } from './support/herald.ts';
import { type ReceivedWebhook, type Receiver, startReceiver } from './support/receiver.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Send concurrency of the `normal` lane: the bound on duplicates a crash may cause. */
const SEND_CONCURRENCY = 32;
/**
 * The webhook timeout is far above the receiver's answer time (at most 1 s), so that no request
 * times out even when a busy, shared machine stalls Herald for seconds: a timed-out request is
 * retried under the same webhook-id, a duplicate that has nothing to do with the crash. The lease
 * must outlast a send. On PostgreSQL the work the dead process held comes back when its leases run
 * out; the embedded store is locked to one process, so the restarted Herald takes it back at once.
 */
const LEASE_MS = 24_000;
const WEBHOOK_TIMEOUT_MS = 20_000;
/** Client-side concurrency of the POSTs. */
const POST_CONCURRENCY = 32;
const USERS = 50;

type StoreKind = 'pglite' | 'postgres';

// ---------------------------------------------------------------------------------------------
// Herald as a child process

interface HeraldProcess {
  proc: ChildProcess;
  url: string;
  /** Resolves with the exit code (null when killed by a signal) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A port that was free a moment ago (listen on 0, read it, close). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Everything one test's Herald processes printed (stdout and stderr, bounded), shown when the test fails. */
class OutputLog {
  private text = '';
  append(label: string, chunk: Buffer): void {
    this.text += chunk
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => `[${label}] ${l}\n`)
      .join('');
    if (this.text.length > 200_000) this.text = `…${this.text.slice(-150_000)}`;
  }
  note(line: string): void {
    this.text += `[test] ${line}\n`;
  }
  toString(): string {
    return this.text;
  }
}

async function startHeraldProcess(
  label: string,
  storeEnv: Record<string, string>,
  log: OutputLog,
  children: Set<ChildProcess>,
): Promise<HeraldProcess> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: '',
    REDIS_URL: '',
    HERALD_API_KEYS: TEST_API_KEY,
    HERALD_JWT_SECRET: TEST_JWT_SECRET,
    HERALD_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
    HERALD_LANE_CONCURRENCY: `normal=${SEND_CONCURRENCY}`,
    // Every send slot may go to the one receiver: this test is about what a crash does to 32 sends
    // in flight, not about sharing slots between receivers (webhook-slow-destination tests that).
    HERALD_WEBHOOK_MAX_PER_DESTINATION: String(SEND_CONCURRENCY),
    HERALD_LEASE_MS: String(LEASE_MS),
    HERALD_WEBHOOK_TIMEOUT_MS: String(WEBHOOK_TIMEOUT_MS),
    HERALD_POLL_MS: '50',
    HERALD_RETRY_BASE_MS: '200',
    HERALD_LOG_LEVEL: 'warn',
    HERALD_EGRESS_ALLOW: TEST_EGRESS_ALLOW,
    ...storeEnv,
  };
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => {
      children.delete(proc);
      log.note(`${label} (pid ${proc.pid}) exited: code=${code} signal=${signal}`);
      resolve({ code, signal });
    });
  });
  let stdout = '';
  proc.stdout?.on('data', (c: Buffer) => {
    if (stdout.length < 10_000) stdout += c.toString('utf8');
    log.append(`${label} out`, c);
  });
  proc.stderr?.on('data', (c: Buffer) => log.append(`${label} err`, c));

  const url = `http://127.0.0.1:${port}`;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  void exited.then((e) => {
    exit = e;
  });
  await eventually(
    async () => {
      if (exit) throw new Error(`${label} exited before it was ready (code ${exit.code}, signal ${exit.signal})`);
      if (!stdout.includes('Herald is listening on')) return false;
      const r = await fetch(`${url}/readyz`).catch(() => null);
      return r?.status === 200;
    },
    `${label} to listen and be ready`,
    120_000,
  );
  log.note(`${label} (pid ${proc.pid}) ready on ${url}`);
  return { proc, url, exited };
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url + path, {
    method,
    headers: {
      authorization: `Bearer ${TEST_API_KEY}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json };
}

async function createUsers(url: string, receiver: Receiver): Promise<void> {
  for (let i = 0; i < USERS; i++) {
    const r = await api(url, 'PUT', `/v1/users/u-${i}`, { webhookUrl: receiver.url });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
  }
}

function notification(i: number) {
  return {
    to: [`u-${i % USERS}`],
    category: 'crash.test',
    channels: ['webhook'],
    title: `crash test #${i}`,
    body: `notification number ${i}`,
    data: { n: i },
  };
}

/**
 * Posts notifications 0..total-1 with `concurrency` requests at once, stopping as soon as
 * `stop()` says so. Returns the ids answered 202 and how many POSTs failed (connection died).
 */
async function postNotifications(
  url: string,
  total: number,
  concurrency: number,
  onAccepted: (count: number) => void = () => {},
  stop: () => boolean = () => false,
): Promise<{ accepted: string[]; failed: number; rejected: string[] }> {
  const accepted: string[] = [];
  const rejected: string[] = [];
  let failed = 0;
  let next = 0;
  const lane = async () => {
    while (next < total && !stop()) {
      const i = next++;
      try {
        const r = await api(url, 'POST', '/v1/notifications', notification(i));
        if (r.status === 202) {
          accepted.push(r.json.id as string);
          onAccepted(accepted.length);
        } else rejected.push(`#${i}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { accepted, failed, rejected };
}

// ---------------------------------------------------------------------------------------------
// What the receiver saw

interface Analysis {
  /** Notification ids seen (body `id`). */
  notificationIds: Set<string>;
  /** Requests whose webhook-id had been seen before. */
  duplicates: number;
  badSignatures: ReceivedWebhook[];
  /** webhook-ids that arrived with different notification ids or bodies. */
  inconsistent: string[];
  /** Notification ids that arrived under more than one webhook-id. */
  multipleWebhookIds: string[];
  /** webhook-ids that arrived more than once. */
  duplicatedIds: string[];
}

function analyse(received: readonly ReceivedWebhook[]): Analysis {
  const first = new Map<string, ReceivedWebhook>();
  const webhookIdsOf = new Map<string, Set<string>>();
  const notificationIds = new Set<string>();
  const badSignatures: ReceivedWebhook[] = [];
  const inconsistent: string[] = [];
  const duplicatedIds = new Set<string>();
  let duplicates = 0;
  for (const r of received) {
    if (!r.signatureValid) badSignatures.push(r);
    const nid = String(r.json?.id);
    notificationIds.add(nid);
    const original = first.get(r.id);
    if (original) {
      duplicates++;
      duplicatedIds.add(r.id);
      if (original.json?.id !== r.json?.id || original.body !== r.body) inconsistent.push(r.id);
    } else first.set(r.id, r);
    const ids = webhookIdsOf.get(nid) ?? new Set<string>();
    ids.add(r.id);
    webhookIdsOf.set(nid, ids);
  }
  const multipleWebhookIds = [...webhookIdsOf].filter(([, ids]) => ids.size !== 1).map(([nid]) => nid);
  return {
    notificationIds,
    duplicates,
    badSignatures,
    inconsistent,
    multipleWebhookIds,
    duplicatedIds: [...duplicatedIds],
  };
}

/** The receiver has seen every id of `ids` (checked incrementally). */
function coverage(receiver: Receiver) {
  const seen = new Set<string>();
  let scanned = 0;
  return (ids: readonly string[]): number => {
    for (; scanned < receiver.received.length; scanned++) seen.add(String(receiver.received[scanned]?.json?.id));
    return ids.filter((id) => seen.has(id)).length;
  };
}

/** Ids of `ids` whose delivery is not yet recorded `sent` (read back through the API). */
async function notYetSent(url: string, ids: readonly string[]): Promise<string[]> {
  const pending: string[] = [];
  let next = 0;
  const lane = async () => {
    while (next < ids.length) {
      const id = ids[next++] as string;
      const r = await api(url, 'GET', `/v1/notifications/${id}`);
      const deliveries = (r.json?.deliveries ?? []) as { status: string; channel: string }[];
      if (
        r.status !== 200 ||
        deliveries.length !== 1 ||
        deliveries[0]?.channel !== 'webhook' ||
        deliveries[0]?.status !== 'sent'
      ) {
        pending.push(id);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
  return pending;
}

async function stopGracefully(h: HeraldProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  h.proc.kill('SIGTERM');
  const timeout = new Promise<null>((r) => setTimeout(() => r(null), 20_000).unref());
  const exit = await Promise.race([h.exited, timeout]);
  if (exit) return exit;
  h.proc.kill('SIGKILL');
  await h.exited;
  return { code: null, signal: 'SIGTERM' };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Stores and receivers for one test

interface TestStore {
  env: Record<string, string>;
  /** Whether a restart takes back every lease at once (the embedded store, locked to one process). */
  exclusive: boolean;
  /** Runs queries on the store (only while no Herald process holds it: PGlite has one owner). */
  read<T>(fn: (query: <R>(text: string, params?: unknown[]) => Promise<R[]>) => Promise<T>): Promise<T>;
}

interface DeliveryRow {
  id: string;
  notification_id: string;
  state: string;
  attempts: number;
}

interface TimelineRow {
  delivery_id: string;
  at: Date;
  event: string;
  detail: unknown;
}

/**
 * The receiver, plus which requests it has not answered yet: a request is unanswered until our own
 * timer, started right after the receiver's and with the same delay, fires (equal timers fire in
 * the order they were set, so ours never fires before the receiver has answered).
 */
interface TrackedReceiver {
  receiver: Receiver;
  /** webhook-ids of the requests not yet answered. */
  unanswered(): string[];
  /** Time of the last request. */
  lastAt(): number;
}

async function trackedReceiver(
  respond: (req: ReceivedWebhook) => { status: number; delayMs: number },
): Promise<TrackedReceiver> {
  const open = new Map<number, string>();
  let n = 0;
  let last = 0;
  const receiver = await startReceiver((req) => {
    const answer = respond(req);
    const i = n++;
    last = Date.now();
    open.set(i, req.id);
    setTimeout(() => open.delete(i), answer.delayMs);
    return answer;
  });
  return { receiver, unanswered: () => [...open.values()], lastAt: () => last };
}

// ---------------------------------------------------------------------------------------------
// After the restart: wait for the work to settle, then check everything

interface CrashRun {
  store: TestStore;
  tracked: TrackedReceiver;
  /** Ids answered 202 (before the kill, for the ingest case). */
  accepted: readonly string[];
  /** Most notifications that may exist beyond `accepted` (POSTs cut off by the kill). */
  maybeMore: number;
  killedAt: number;
  /** When the restarted Herald was ready. */
  restartedAt: number;
  /** webhook-ids the receiver held unanswered when Herald died: these must come again. */
  heldAtKill: readonly string[];
  restarted: HeraldProcess;
}

async function settleAndVerify(run: CrashRun) {
  const { receiver } = run.tracked;
  const covered = coverage(receiver);
  await eventually(
    () => covered(run.accepted) === run.accepted.length,
    'every accepted notification to reach the receiver',
    90_000,
  );
  const tAllReceived = Date.now();

  // Through the API: the notifications whose requests the kill interrupted, those that arrived
  // without having been answered 202, and a sample of the rest, end `sent` (the store check below
  // covers every delivery, once Herald has stopped).
  const byWebhookId = new Map(receiver.received.map((r) => [r.id, String(r.json?.id)]));
  const sample = new Set(run.heldAtKill.map((id) => byWebhookId.get(id) ?? ''));
  const acceptedSet = new Set(run.accepted);
  for (const nid of byWebhookId.values()) if (!acceptedSet.has(nid)) sample.add(nid);
  for (let i = 0; i < run.accepted.length; i += Math.ceil(run.accepted.length / 100)) sample.add(run.accepted[i] ?? '');
  let pending = [...sample];
  await eventually(
    async () => {
      pending = await notYetSent(run.restarted.url, pending);
      return pending.length === 0;
    },
    'the sampled deliveries to be recorded as sent',
    30_000,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; still not sent: ${pending.slice(0, 5).join(', ')} (${pending.length} in all)`);
  });

  // Let every lease the dead process held come back: at the restart on the embedded store (so a
  // held request that never came again fails the test below), otherwise once it expires, LEASE_MS
  // after the kill at the latest, found by the reclaimer within 5 s. Then wait for the receiver to
  // fall quiet.
  const leasesBackAt = run.store.exclusive ? run.restartedAt : run.killedAt + LEASE_MS + 5_000 + 1_000;
  await eventually(
    () => Date.now() > leasesBackAt && Date.now() - run.tracked.lastAt() > 1_500,
    'the receiver to fall quiet',
    30_000,
  );
  const tSettled = Date.now();
  const requestsBeforeStop = receiver.received.length;
  const stopped = await stopGracefully(run.restarted);
  expect(stopped, 'the restarted Herald stops cleanly on SIGTERM').toEqual({ code: 0, signal: null });
  expect(receiver.received.length, 'nothing was left to send at shutdown').toBe(requestsBeforeStop);

  // What the store holds after the clean stop, and what the receiver saw.
  const a = analyse(receiver.received);
  const { rows, timeline, events } = await run.store.read(async (query) => ({
    rows: await query<DeliveryRow>(
      'SELECT id::text, notification_id::text, state, attempts FROM deliveries ORDER BY id',
    ),
    timeline: await query<TimelineRow>(
      `SELECT delivery_id::text, at, event, detail FROM timeline
       WHERE delivery_id = ANY($1::uuid[]) ORDER BY id`,
      [a.duplicatedIds],
    ),
    // Why deliveries were attempted again: expired leases, and failed attempts by error.
    events: await query<{ what: string; n: number }>(
      `SELECT event || COALESCE(': ' || (detail->>'error'), '') AS what, count(*)::int AS n FROM timeline
       WHERE event IN ('lease_expired', 'attempt_failed', 'failed', 'dead') GROUP BY 1 ORDER BY 2 DESC`,
    ),
  }));
  const missing = run.accepted.filter((id) => !a.notificationIds.has(id));
  expect(missing, 'accepted notifications that never reached the receiver').toEqual([]);
  expect(
    a.badSignatures.map((r) => r.id),
    'requests with an invalid signature',
  ).toEqual([]);
  expect(a.inconsistent, 'webhook-ids that came again with another notification or body').toEqual([]);
  expect(a.multipleWebhookIds, 'notifications that came under more than one webhook-id').toEqual([]);
  expect(
    a.duplicates,
    `duplicates (requests whose webhook-id was seen before):\n${duplicateReport(run, timeline)}`,
  ).toBeLessThanOrEqual(SEND_CONCURRENCY);
  // The requests Herald died waiting for were sent again, under the same webhook-id.
  const seenTwice = new Set(a.duplicatedIds);
  expect(
    run.heldAtKill.filter((id) => !seenTwice.has(id)),
    'requests in flight at the kill that were not sent again',
  ).toEqual([]);
  // A receiver that de-duplicates by webhook-id sees each notification exactly once.
  const distinctWebhookIds = receiver.distinctIds();
  expect(distinctWebhookIds.size).toBe(a.notificationIds.size);
  expect(receiver.received.length).toBe(distinctWebhookIds.size + a.duplicates);
  expect(a.notificationIds.size).toBeGreaterThanOrEqual(run.accepted.length);
  expect(a.notificationIds.size).toBeLessThanOrEqual(run.accepted.length + run.maybeMore);

  // The store: one delivery per received notification, every one `sent`, and the webhook-ids the
  // receiver saw are exactly the delivery ids.
  const notSent = rows.filter((r) => r.state !== 'sent');
  expect(notSent, 'deliveries not sent').toEqual([]);
  expect(new Set(rows.map((r) => r.notification_id))).toEqual(a.notificationIds);
  expect(new Set(rows.map((r) => r.id))).toEqual(distinctWebhookIds);
  const reattempts = rows.reduce((s, r) => s + r.attempts - 1, 0);
  expect(reattempts).toBeGreaterThanOrEqual(a.duplicates);

  return {
    duplicates: a.duplicates,
    distinct: a.notificationIds.size,
    requests: receiver.received.length,
    reattempts,
    why: events.map((e) => `${e.what} ×${e.n}`).join(', ') || 'none',
    tAllReceived,
    tSettled,
  };
}

/** For each duplicated webhook-id: when it arrived (relative to the kill) and its timeline. */
function duplicateReport(run: CrashRun, timeline: readonly TimelineRow[]): string {
  const rel = (t: number) => `${t - run.killedAt >= 0 ? '+' : ''}${t - run.killedAt} ms`;
  const arrivals = new Map<string, string[]>();
  for (const r of run.tracked.receiver.received) {
    const list = arrivals.get(r.id) ?? [];
    list.push(`${rel(r.at)} (attempt ${String(r.headers['herald-attempt'])})`);
    arrivals.set(r.id, list);
  }
  const held = new Set(run.heldAtKill);
  return [...arrivals]
    .filter(([, list]) => list.length > 1)
    .map(([id, list]) => {
      const events = timeline
        .filter((t) => t.delivery_id === id)
        .map(
          (t) =>
            `${t.event}@${rel(new Date(t.at).getTime())}${t.event === 'attempt_failed' ? ` ${JSON.stringify(t.detail)}` : ''}`,
        );
      return `  ${id}${held.has(id) ? ' [held at kill]' : ''}: arrived ${list.join(', ')}; timeline ${events.join(', ')}`;
    })
    .join('\n');
}

// ---------------------------------------------------------------------------------------------

/** Every Herald process still running, so none outlives this test file even if it dies. */
const allChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of allChildren) c.kill('SIGKILL');
});

describe.each<StoreKind>(['pglite', 'postgres'])('SIGKILL and restart (%s)', (kind) => {
  const children = allChildren;
  const cleanups: (() => Promise<void>)[] = [];
  let log = new OutputLog();

  /** A fresh PGlite data dir or a fresh PostgreSQL database, removed after the test. */
  async function freshStore(): Promise<TestStore> {
    if (kind === 'postgres') {
      const db = await freshPostgresUrl();
      cleanups.push(() => db.drop());
      return {
        env: { DATABASE_URL: db.url, HERALD_PG_POOL_SIZE: '8' },
        exclusive: false,
        async read(fn) {
          const store = await openPostgresStore(db.url, 1);
          try {
            return await fn((text, params) => store.sql.query(text, params));
          } finally {
            await store.close();
          }
        },
      };
    }
    const dir = await mkdtemp(join(tmpdir(), 'herald-crash-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return {
      env: { HERALD_DATA_DIR: dir },
      exclusive: true,
      async read(fn) {
        const store = await openEmbeddedStore(join(dir, 'pgdata'));
        try {
          return await fn((text, params) => store.sql.query(text, params));
        } finally {
          await store.close();
        }
      },
    };
  }

  async function receiverFor(respond: (req: ReceivedWebhook) => { status: number; delayMs: number }) {
    const r = await trackedReceiver(respond);
    cleanups.push(() => r.receiver.close());
    return r;
  }

  /** Collects what this test's Herald processes print, and prints it if the test fails (or times out). */
  function captureOutput(): void {
    const current = new OutputLog();
    log = current;
    onTestFailed(() => {
      console.error(`crash[${kind}] failed; Herald output:\n${current.toString() || '(nothing)'}`);
    });
  }

  afterEach(async () => {
    const left = [...children];
    for (const c of left) c.kill('SIGKILL');
    if (left.length) await sleep(300);
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  });

  it('loses nothing when killed while deliveries are in flight; duplicates ≤ send concurrency, same webhook-id', async () => {
    captureOutput();
    const TOTAL = 2_000;
    const store = await freshStore();
    const t0 = Date.now();

    // While POSTs are flowing the receiver answers slowly (250 ms, and 1 s once 40% has arrived;
    // both far below the webhook timeout), so that all 2,000 are accepted before the kill; then it
    // answers in 25 ms. The kill comes from inside the receiver, while it holds unanswered
    // requests, once every POST has been accepted and a quarter of the notifications has arrived.
    let posting = true;
    let victim: HeraldProcess | null = null;
    let killedAt = 0;
    let receivedAtKill = 0;
    let heldAtKill: string[] = [];
    const distinctSoFar = new Set<string>();
    const tracked: TrackedReceiver = await receiverFor((req) => {
      distinctSoFar.add(String(req.json?.id));
      const delayMs = !posting ? 25 : distinctSoFar.size < TOTAL * 0.4 ? 250 : 1_000;
      const answer = { status: 200, delayMs };
      if (victim && !killedAt && !posting && distinctSoFar.size >= TOTAL / 4) {
        victim.proc.kill('SIGKILL');
        killedAt = Date.now();
        receivedAtKill = distinctSoFar.size;
        heldAtKill = [...tracked.unanswered(), req.id];
      }
      return answer;
    });

    const first = await startHeraldProcess('herald#1', store.env, log, children);
    victim = first;
    const tStarted = Date.now();
    await createUsers(first.url, tracked.receiver);
    const posted = await postNotifications(first.url, TOTAL, POST_CONCURRENCY);
    posting = false;
    const tPosted = Date.now();
    expect(posted.rejected).toEqual([]);
    expect(posted.failed).toBe(0);
    expect(posted.accepted).toHaveLength(TOTAL);
    expect(new Set(posted.accepted).size).toBe(TOTAL);
    log.note(`all ${TOTAL} accepted after ${seconds(tPosted - tStarted)}; receiver has ${distinctSoFar.size}`);

    await eventually(() => killedAt > 0, 'the receiver to trigger the SIGKILL', 30_000);
    expect((await first.exited).signal).toBe('SIGKILL');
    // The kill interrupted the work rather than coming after it.
    expect(receivedAtKill).toBeLessThan(TOTAL);
    expect(heldAtKill.length).toBeGreaterThan(0);

    const restarted = await startHeraldProcess('herald#2', store.env, log, children);
    const tRestarted = Date.now();
    const r = await settleAndVerify({
      store,
      tracked,
      accepted: posted.accepted,
      maybeMore: 0,
      killedAt,
      restartedAt: tRestarted,
      heldAtKill,
      restarted,
    });
    expect(r.distinct).toBe(TOTAL);

    console.log(
      `crash[${kind}] SIGKILL mid-delivery: ${TOTAL} accepted in ${seconds(tPosted - tStarted)}, ` +
        `${receivedAtKill} received before SIGKILL (${heldAtKill.length} unanswered at the kill), ` +
        `restart ready ${seconds(tRestarted - killedAt)} after the kill, ` +
        `all ${TOTAL} received ${seconds(r.tAllReceived - tRestarted)} and settled ${seconds(r.tSettled - tRestarted)} after restart; ` +
        `duplicates=${r.duplicates} (bound ${SEND_CONCURRENCY}), extra attempts=${r.reattempts} (${r.why}); ` +
        `first start ${seconds(tStarted - t0)}, total ${seconds(Date.now() - t0)}`,
    );
  }, 300_000);

  it('delivers every POST answered 202 before a SIGKILL during ingest', async () => {
    captureOutput();
    const TOTAL = 1_000;
    const KILL_AFTER = 400;
    const store = await freshStore();
    const t0 = Date.now();
    const tracked = await receiverFor(() => ({ status: 200, delayMs: 25 }));

    const first = await startHeraldProcess('herald#1', store.env, log, children);
    const tStarted = Date.now();
    await createUsers(first.url, tracked.receiver);
    let killedAt = 0;
    let receivedAtKill = 0;
    let heldAtKill: string[] = [];
    const posted = await postNotifications(
      first.url,
      TOTAL,
      POST_CONCURRENCY,
      (count) => {
        if (count >= KILL_AFTER && !killedAt) {
          first.proc.kill('SIGKILL');
          killedAt = Date.now();
          receivedAtKill = tracked.receiver.distinctIds().size;
          heldAtKill = tracked.unanswered();
        }
      },
      () => killedAt > 0,
    );
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(posted.rejected).toEqual([]);
    expect(posted.accepted.length).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(posted.accepted.length).toBeLessThan(TOTAL);
    expect(new Set(posted.accepted).size).toBe(posted.accepted.length);

    const restarted = await startHeraldProcess('herald#2', store.env, log, children);
    const tRestarted = Date.now();
    const r = await settleAndVerify({
      store,
      tracked,
      accepted: posted.accepted,
      maybeMore: posted.failed,
      killedAt,
      restartedAt: tRestarted,
      heldAtKill,
      restarted,
    });

    // POSTs cut off by the kill may or may not have been committed; those that were are
    // delivered too (so the receiver may count a few more notifications than were answered).
    console.log(
      `crash[${kind}] SIGKILL mid-ingest: ${posted.accepted.length} answered 202 before SIGKILL, ` +
        `${posted.failed} POSTs cut off, ${receivedAtKill} received before SIGKILL ` +
        `(${heldAtKill.length} unanswered at the kill); after restart ${r.distinct} distinct notifications ` +
        `received, all ${posted.accepted.length} accepted among them (restart ready ${seconds(tRestarted - killedAt)} ` +
        `after the kill, settled ${seconds(r.tSettled - tRestarted)} after restart); ` +
        `duplicates=${r.duplicates} (bound ${SEND_CONCURRENCY}), extra attempts=${r.reattempts} (${r.why}); ` +
        `first start ${seconds(tStarted - t0)}, total ${seconds(Date.now() - t0)}`,
    );
  }, 240_000);
});
