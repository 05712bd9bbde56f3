/**
 * Issue 13's digest acceptance test, with real processes: 8 Herald worker processes
 * (`--role worker,scheduler`) on one PostgreSQL database take the same due digests at once, and one
 * of them is SIGKILLed while its sends are at the receiver. Afterwards:
 * - the receiver has seen exactly one digest identity (webhook-id) per user × window, each signed,
 *   each carrying all of its window's members (`data.digest.count`);
 * - raw duplicates exist only under an identity seen before, with the same body, and each is an
 *   attempt the store counted (a lease that ran out: the killed process's, or a slow live one's);
 * - in-app: exactly one inbox entry per user × window, and every member delivery is `sent`.
 * The embedded store belongs to one process: there, one Herald process is SIGKILLed mid-send and
 * started again on the same data (digests.contract.integration.test.ts also runs 8 runners in one
 * process on it, one of which dies mid-send).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { decisionKey } from '../src/core/decider.ts';
import type { Channel, Decision } from '../src/core/types.ts';
import { openEmbeddedStore, openPostgresStore, type SqlStore } from '../src/store/store-sql.ts';
import { freshPostgresUrl } from './support/databases.ts';
import { eventually, TEST_API_KEY, testEnv } from './support/herald.ts';
import { startHeraldChild } from './support/herald-child.ts';
import { newNotification } from './support/notifications.ts';
import { type Receiver, startReceiver } from './support/receiver.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROCESSES = 8;
const USERS = 60;
const CHANNELS: Channel[] = ['webhook', 'in_app'];
/** Time for a send and its record; a killed process's digests come back when it runs out. */
const LEASE_MS = 15_000;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

interface Worker {
  proc: ChildProcess;
  exited: Promise<void>;
  output(): string;
}

/** `herald start --role worker,scheduler` as a child process, resolved once it runs. */
async function addUsers(store: SqlStore, users: string[], webhookUrl: string): Promise<void> {
  for (const id of users) {
    await store.upsertUser({
      id,
      email: null,
      phone: null,
      timezone: null,
      locale: null,
      webhookUrl,
      chatWebhookUrl: null,
    });
  }
}

/** Two windows, both over: their digests are due as soon as a worker looks. */
function pastWindows() {
  const now = Date.now();
  return [
    { windowStart: new Date(now - 7_200_000), windowEnd: new Date(now - 3_600_000) },
    { windowStart: new Date(now - 3_600_000), windowEnd: new Date(now - 3_000) },
  ];
}

/**
 * What must hold once every digest is sent, whatever crashed: one identity per user × window at the
 * receiver, duplicates under the same id and body only (each an attempt the store counted), one
 * inbox entry per user × window, every member sent. Returns the duplicates and the re-taken digests.
 */
async function checkExactlyOnce(store: SqlStore, receiver: Receiver, users: number, windows: number) {
  const expected = users * windows * CHANNELS.length;
  const digests = await store.sql.query<{ id: string; channel: string; state: string; attempts: number }>(
    'SELECT id, channel, state, attempts FROM digests',
  );
  expect(digests).toHaveLength(expected);
  expect(digests.every((d) => d.state === 'sent')).toBe(true);
  const webhook = digests.filter((d) => d.channel === 'webhook');
  expect(receiver.distinctIds()).toEqual(new Set(webhook.map((d) => d.id)));
  expect(receiver.received.every((r) => r.signatureValid)).toBe(true);
  expect(receiver.received.every((r) => r.json?.data?.digest?.count === 2)).toBe(true);
  const bodies = new Map<string, string>();
  for (const r of receiver.received) {
    expect(r.json.id).toBe(r.id);
    const first = bodies.get(r.id);
    if (first === undefined) bodies.set(r.id, JSON.stringify(r.json));
    else expect(JSON.stringify(r.json)).toBe(first);
  }
  expect(receiver.received.length).toBeLessThanOrEqual(webhook.reduce((s, d) => s + d.attempts, 0));
  const entries = await store.sql.query<{ user_id: string; n: number }>(
    'SELECT user_id, count(*)::int AS n FROM inbox GROUP BY user_id',
  );
  expect(entries).toHaveLength(users);
  expect(entries.every((e) => e.n === windows)).toBe(true);
  const [members] = await store.sql.query<{ sent: number; all: number }>(
    `SELECT count(*) FILTER (WHERE state = 'sent')::int AS sent, count(*)::int AS "all"
     FROM deliveries WHERE digest_id IS NOT NULL`,
  );
  expect(members).toEqual({ sent: expected * 2, all: expected * 2 });
  return {
    duplicates: receiver.received.length - receiver.distinctIds().size,
    retaken: digests.filter((d) => d.attempts > 1).length,
  };
}

async function startWorker(databaseUrl: string): Promise<Worker> {
  const dataDir = await mkdtemp(join(tmpdir(), 'herald-digests-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--role', 'worker,scheduler'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ...testEnv(dataDir),
      DATABASE_URL: databaseUrl,
      HERALD_PG_POOL_SIZE: '2',
      HERALD_LEASE_MS: String(LEASE_MS),
      HERALD_WEBHOOK_TIMEOUT_MS: '10000',
      HERALD_POLL_MS: '100',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  proc.stderr?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const w = { proc, exited, output: () => out };
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  await eventually(
    () => {
      if (proc.exitCode !== null) throw new Error(`herald exited (${proc.exitCode}): ${out}`);
      return /Herald is listening/.test(out) || undefined;
    },
    'a worker process to start',
    120_000,
  );
  return w;
}

/**
 * Two notifications to every user per window, digested on every channel, in one accepting
 * transaction: accepted one after the other, the second could find a digest already taken (its
 * window is over) and be sent on its own, as a late member is.
 */
async function acceptDigested(store: SqlStore, users: string[], windows: { windowStart: Date; windowEnd: Date }[]) {
  const batch = windows.flatMap((window) =>
    [1, 2].map((k) => {
      const n = newNotification({
        to: users,
        category: 'digest.crash',
        channels: CHANNELS,
        title: `${k} at ${window.windowEnd.toISOString()}`,
        expiresAt: new Date(Date.now() + 86_400_000),
      });
      const d: Decision = { kind: 'digest', ...window };
      return { n, per: new Map(users.flatMap((u) => CHANNELS.map((c) => [decisionKey(u, c), d] as const))) };
    }),
  );
  const out = await store.accept(
    batch.map((b) => b.n),
    { decisions: new Map(batch.map((b) => [b.n.id, b.per])) },
  );
  expect(out.map((o) => o.kind)).toEqual(batch.map(() => 'accepted'));
}

it('8 worker processes and a SIGKILL: exactly one digest per user × window, at the receiver and in the inbox', async () => {
  const db = await freshPostgresUrl();
  cleanups.push(() => db.drop());
  const store = await openPostgresStore(db.url, 4);
  cleanups.push(() => store.close());
  // Slow answers, so that the killed process holds sends in flight at the receiver.
  const receiver: Receiver = await startReceiver(() => ({ status: 200, delayMs: 3_000 }));
  cleanups.push(() => receiver.close());
  const users = Array.from({ length: USERS }, (_, i) => `user-${i}`);
  await addUsers(store, users, receiver.url);

  const workers = await Promise.all(Array.from({ length: PROCESSES }, () => startWorker(db.url)));
  // Two windows per user, both already over: every process races for the same digests.
  const windows = pastWindows();
  await acceptDigested(store, users, windows);

  // Kill one process while sends are at the receiver (every process takes up to 16 at once, and the
  // receiver holds each answer 3 s: by the time half the digests are there, most processes have some).
  await eventually(() => receiver.received.length >= 60 || undefined, 'sends to reach the receiver', 120_000);
  const victim = workers[0] as Worker;
  victim.proc.kill('SIGKILL');
  await victim.exited;

  const expected = USERS * windows.length * CHANNELS.length;
  await eventually(
    async () => {
      const [r] = await store.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM digests WHERE state = 'sent'`);
      return r?.n === expected || undefined;
    },
    'every digest to be sent',
    120_000,
  );
  await Promise.all(
    workers.slice(1).map(async (w) => {
      w.proc.kill('SIGTERM');
      await w.exited;
    }),
  );

  const { duplicates, retaken } = await checkExactlyOnce(store, receiver, USERS, windows.length);
  // The kill was mid-run: some digest it held was taken again.
  expect(retaken).toBeGreaterThan(0);
  console.log(
    `digests-crash[postgres, ${PROCESSES} processes]: ${expected} digests, ${receiver.received.length} webhook ` +
      `requests for ${receiver.distinctIds().size} identities (${duplicates} duplicates, same id and body), ` +
      `${retaken} digests taken again after the kill`,
  );
}, 400_000);

it('the embedded store: a Herald process SIGKILLed mid-send and started again sends each digest once, under one id', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'herald-digests-pglite-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const receiver: Receiver = await startReceiver(() => ({ status: 200, delayMs: 1_000 }));
  cleanups.push(() => receiver.close());
  const users = Array.from({ length: 30 }, (_, i) => `user-${i}`);
  const windows = pastWindows();
  // The digests are collected before Herald starts (the data directory is one process's at a time).
  const before = await openEmbeddedStore(join(dataDir, 'pgdata'));
  await addUsers(before, users, receiver.url);
  await acceptDigested(before, users, windows);
  await before.close();

  const env = {
    ...testEnv(dataDir),
    HERALD_LEASE_MS: String(LEASE_MS),
    HERALD_WEBHOOK_TIMEOUT_MS: '10000',
    HERALD_POLL_MS: '100',
  };
  const first = await startHeraldChild(env);
  cleanups.push(() => first.stop());
  await eventually(() => receiver.received.length >= 5 || undefined, 'sends to reach the receiver', 60_000);
  const exited = new Promise<void>((r) => first.process.once('exit', () => r()));
  first.process.kill('SIGKILL');
  await exited;
  const killedAt = receiver.received.length;

  const second = await startHeraldChild(env);
  cleanups.push(() => second.stop());
  const webhookDigests = users.length * windows.length;
  await eventually(() => receiver.distinctIds().size === webhookDigests || undefined, 'every digest', 120_000);
  // Requests the killed process had in flight come again after the restart (the same ids).
  await eventually(() => receiver.received.length > killedAt || undefined, 'the restart to send', 60_000);
  // And every in-app digest is in its inbox.
  await eventually(
    async () => {
      for (const u of users) {
        const res = await fetch(`${second.url}/v1/users/${u}/inbox?limit=10`, {
          headers: { authorization: `Bearer ${TEST_API_KEY}` },
        });
        const page = (await res.json()) as { items: unknown[] };
        if (page.items.length < windows.length) return undefined;
      }
      return true;
    },
    'every in-app digest',
    60_000,
  );
  await second.stop();

  const after = await openEmbeddedStore(join(dataDir, 'pgdata'));
  cleanups.push(() => after.close());
  const { duplicates, retaken } = await checkExactlyOnce(after, receiver, users.length, windows.length);
  expect(retaken).toBeGreaterThan(0);
  console.log(
    `digests-crash[pglite, SIGKILL + restart]: ${webhookDigests * 2} digests, ${receiver.received.length} webhook ` +
      `requests for ${receiver.distinctIds().size} identities (${duplicates} duplicates, same id and body), ` +
      `${retaken} digests taken again after the restart`,
  );
}, 400_000);
