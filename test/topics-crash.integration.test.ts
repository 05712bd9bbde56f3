/**
 * A fan-out killed half-way resumes and serves every subscriber exactly once (issue 13, "must be
 * true"), on both stores: Herald runs as a child process (`herald start`), 50,000 users subscribe to a
 * topic through the API, a topic notification is posted, and once its timeline shows some pages but
 * not the last the process is SIGKILLed, then started again on the same data. When the fan-out is
 * done, the store holds exactly one inbox entry of the notification for each of the 50,000, none for
 * anybody else, and `recipients` is 50,000.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openEmbeddedStore, openPostgresStore } from '../src/store/store-sql.ts';
import { freshPostgresUrl } from './support/databases.ts';
import { eventually, TEST_API_KEY, testEnv } from './support/herald.ts';
import { type HeraldChild, startHeraldChild } from './support/herald-child.ts';

const SUBSCRIBERS = 50_000;
const PER_CALL = 10_000;

async function call(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${TEST_API_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
}

/** The last fan-out event of the notification's timeline: how far it got, and whether it is done. */
async function progress(url: string, id: string): Promise<{ served: number; done: boolean }> {
  const r = await call(url, 'GET', `/v1/notifications/${id}?limit=1`);
  const events = (r.json.timeline ?? []) as { event: string; detail: { served?: number; recipients?: number } }[];
  const done = events.find((e) => e.event === 'fanout_done');
  const pages = events.filter((e) => e.event === 'fanout_progress');
  return { served: done?.detail.recipients ?? pages[pages.length - 1]?.detail.served ?? 0, done: done !== undefined };
}

describe.each(['pglite', 'postgres'] as const)('fan-out killed half-way (%s)', (kind) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  });

  it(`resumes after restart and serves each of ${SUBSCRIBERS} subscribers exactly once`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'herald-fanout-crash-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const db = kind === 'postgres' ? await freshPostgresUrl() : null;
    if (db) cleanups.push(() => db.drop());
    const env = {
      ...testEnv(dir),
      HERALD_LOG_LEVEL: 'warn',
      // Small pages, so that the kill lands between many of them; short leases, so that on PostgreSQL
      // (where a restarted process cannot know the holder died) the job is taken again soon.
      HERALD_FANOUT_PAGE: '100',
      HERALD_LEASE_MS: '3000',
      HERALD_WEBHOOK_TIMEOUT_MS: '1000',
      HERALD_POLL_MS: '50',
      ...(db ? { DATABASE_URL: db.url, HERALD_PG_POOL_SIZE: '4' } : {}),
    };
    let child: HeraldChild = await startHeraldChild(env);
    cleanups.push(() => child.stop());

    const topic = 'crash-topic';
    const ids = Array.from({ length: SUBSCRIBERS }, (_, i) => `s-${String(i).padStart(6, '0')}`);
    for (let i = 0; i < SUBSCRIBERS; i += PER_CALL) {
      const r = await call(child.url, 'PUT', `/v1/topics/${topic}/subscribers`, {
        userIds: ids.slice(i, i + PER_CALL),
      });
      expect(r.json).toEqual({ added: PER_CALL });
    }
    const post = await call(child.url, 'POST', '/v1/notifications', { to: { topic }, category: 'news', title: 'x' });
    expect(post.status).toBe(202);
    const id = post.json.id as string;

    const before = await eventually(
      async () => {
        const p = await progress(child.url, id);
        return p.served >= 2_000 || p.done ? p : null;
      },
      'the fan-out to be under way',
      60_000,
    );
    child.process.kill('SIGKILL');
    await new Promise((r) => child.process.once('exit', r));
    expect(before.done, `killed at ${before.served} served: the fan-out must not have finished`).toBe(false);

    child = await startHeraldChild(env);
    const after = await eventually(
      async () => {
        const p = await progress(child.url, id);
        return p.done ? p : null;
      },
      'the fan-out to finish after the restart',
      120_000,
    );
    expect(after.served).toBe(SUBSCRIBERS);
    expect((await call(child.url, 'GET', `/v1/notifications/${id}?limit=1`)).json.recipients).toBe(SUBSCRIBERS);
    await child.stop();

    const store = db ? await openPostgresStore(db.url, 1) : await openEmbeddedStore(join(dir, 'pgdata'));
    try {
      const [counts] = await store.sql.query<{ users: number; entries: number; twice: number; strangers: number }>(
        `SELECT count(DISTINCT user_id)::int AS users, count(*)::int AS entries,
                (SELECT count(*)::int FROM (SELECT user_id FROM inbox WHERE notification_id = $1
                  GROUP BY user_id HAVING count(*) > 1) d) AS twice,
                count(*) FILTER (WHERE NOT user_id = ANY($2::text[]))::int AS strangers
         FROM inbox WHERE notification_id = $1`,
        [id, ids],
      );
      expect(counts).toEqual({ users: SUBSCRIBERS, entries: SUBSCRIBERS, twice: 0, strangers: 0 });
      // Each user's entry is their seq 1: nothing was appended and lost, nothing skipped.
      const [seqs] = await store.sql.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM inbox_counters WHERE user_id = ANY($1::text[]) AND last_seq = 1 AND unread = 1',
        [ids],
      );
      expect(seqs?.n).toBe(SUBSCRIBERS);
    } finally {
      await store.close();
    }
  }, 300_000);
});
