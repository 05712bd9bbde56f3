/**
 * Fan-out pages through the decider (ADR 13), on both stores: the runner decides each page's
 * subscribers with the Decider it is given, and the page stores the decided pairs — skipped,
 * deferred, digested, or through a worker's lease — with their timeline events, in the transaction
 * that moves the checkpoint; the others are written as before (in-app straight into the inbox). A
 * decider that decides nothing leaves the page exactly as without one. And purgeTopics: what
 * fan-out no longer needs goes, what a running job or a remaining item still reads stays.
 */
import { expect, it } from 'vitest';
import type { Decider, Decisions } from '../src/core/decider.ts';
import { decisionKey } from '../src/core/decider.ts';
import { HeraldEmitter } from '../src/core/events.ts';
import { FanoutRunner } from '../src/core/fanout.ts';
import type { Bus } from '../src/core/ports-bus.ts';
import type { BusJob, Decision, NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { forEachStore } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';

const HOUR = 3_600_000;
const USERS = Array.from({ length: 10 }, (_, i) => `u-${String(i).padStart(2, '0')}`);

function topicNotification(topic: string, channels: NewNotification['channels']): NewNotification {
  return newNotification({ topic, category: 'news', channels });
}

/** Decides from a table by user × channel; records the recipients of every call. */
class TableDecider implements Decider {
  readonly calls: string[][] = [];
  /** `mayDecide`'s answer: false makes pages skip the decider (and their audience read). */
  constructor(
    private readonly table: Record<string, Decision>,
    private readonly may = true,
  ) {}
  mayDecide(): boolean {
    return this.may;
  }
  async decide(batch: readonly NewNotification[]): Promise<Decisions | undefined> {
    const out = new Map<string, Map<string, Decision>>();
    for (const n of batch) {
      this.calls.push([...n.to]);
      for (const user of n.to) {
        for (const channel of n.channels) {
          const d = this.table[`${user} ${channel}`];
          if (!d) continue;
          if (!out.has(n.id)) out.set(n.id, new Map());
          out.get(n.id)?.set(decisionKey(user, channel), d);
        }
      }
    }
    return out.size ? out : undefined;
  }
}

function storeQueueBus(published: BusJob[]): Bus {
  return {
    kind: 'test',
    queueIsStore: true,
    horizonMs: Number.POSITIVE_INFINITY,
    full: false,
    waiting: async () => 0,
    async publish(jobs) {
      published.push(...jobs);
    },
    claim: async (lane, max) => ({ lane, max }),
    ack: async () => {},
    waitForWork: async () => {},
    close: async () => {},
  };
}

/** Runs the store's fan-out jobs with `decider` (pages of 4) until none is running. */
async function fanOut(store: SqlStore, decider: Decider | undefined, published: BusJob[] = []): Promise<void> {
  const runner = new FanoutRunner(
    store,
    storeQueueBus(published),
    new HeraldEmitter(),
    { error() {} },
    {
      leaseMs: 30_000,
      pollMs: 20,
      maxPage: 4,
      pageBudgetMs: 60_000,
      ...(decider ? { decider } : {}),
    },
  );
  runner.start();
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const [r] = await store.sql.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM fanout_jobs WHERE state = 'running'`,
      );
      if (r?.n === 0) return;
      if (Date.now() > deadline) throw new Error('fan-out did not finish in 20 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await runner.stop();
  }
}

forEachStore('fan-out pages through the decider', ({ store }) => {
  async function accept(n: NewNotification, fanoutOnReadAbove = 1_000_000) {
    const [o] = await store().accept([n], { inAppUpTo: 100, fanoutOnReadAbove });
    expect(o?.kind).toBe('accepted');
  }
  const rowsOf = (id: string) =>
    store().sql.query<{
      user_id: string;
      channel: string;
      state: string;
      reason: string | null;
      via_worker: boolean;
      next_attempt_at: Date;
      digest_id: string | null;
    }>(
      `SELECT user_id, channel, state, reason, via_worker, next_attempt_at, digest_id FROM deliveries
       WHERE notification_id = $1 ORDER BY user_id, channel`,
      [id],
    );
  const inboxOf = async (id: string) =>
    (
      await store().sql.query<{ user_id: string }>('SELECT user_id FROM inbox WHERE notification_id = $1 ORDER BY 1', [
        id,
      ])
    ).map((r) => r.user_id);

  it('each page is decided on its subscribers, and the decisions are stored with the page', async () => {
    const topic = 'decided';
    await store().subscribe(topic, USERS);
    const n = topicNotification(topic, ['in_app', 'email']);
    await accept(n);
    const until = new Date(Date.now() + 8 * HOUR);
    const windowStart = new Date(Math.floor(Date.now() / HOUR) * HOUR);
    const windowEnd = new Date(windowStart.getTime() + HOUR);
    const decider = new TableDecider({
      'u-01 in_app': { kind: 'skip', reason: 'opted_out' },
      'u-01 email': { kind: 'skip', reason: 'opted_out' },
      'u-02 in_app': { kind: 'defer', reason: 'quiet_hours', until },
      'u-03 email': { kind: 'digest', windowStart, windowEnd },
      'u-04 in_app': { kind: 'worker' },
      'u-09 email': { kind: 'skip', reason: 'capped' },
    });
    const published: BusJob[] = [];
    await fanOut(store(), decider, published);

    expect(decider.calls).toEqual([USERS.slice(0, 4), USERS.slice(4, 8), USERS.slice(8)]);
    // In-app entries for everyone the decider left alone; none for the skipped, deferred or leased.
    expect(await inboxOf(n.id)).toEqual(USERS.filter((u) => !['u-01', 'u-02', 'u-04'].includes(u)));
    const rows = await rowsOf(n.id);
    const row = (user: string, channel: string) => rows.find((r) => r.user_id === user && r.channel === channel);
    // In-app sent in SQL has no delivery row (migration 0013): only the decided in-app pairs have one.
    expect(rows.filter((r) => r.channel === 'in_app').map((r) => r.user_id)).toEqual(['u-01', 'u-02', 'u-04']);
    expect(row('u-01', 'in_app')).toMatchObject({ state: 'skipped', reason: 'opted_out' });
    expect(row('u-01', 'email')).toMatchObject({ state: 'skipped', reason: 'opted_out' });
    expect(row('u-02', 'in_app')).toMatchObject({ state: 'pending', reason: 'quiet_hours', via_worker: false });
    expect(row('u-02', 'in_app')?.next_attempt_at.getTime()).toBe(until.getTime());
    expect(row('u-03', 'email')).toMatchObject({ state: 'pending', reason: 'digested' });
    expect(row('u-03', 'email')?.digest_id).not.toBeNull();
    expect(row('u-04', 'in_app')).toMatchObject({ state: 'pending', reason: null, via_worker: true });
    expect(row('u-09', 'email')).toMatchObject({ state: 'skipped', reason: 'capped' });
    expect(rows.filter((r) => r.channel === 'email' && r.state === 'pending' && r.reason === null)).toHaveLength(7);
    const [digest] = await store().sql.query<{ user_id: string; channel: string }>(
      'SELECT user_id, channel FROM digests',
    );
    expect(digest).toEqual({ user_id: 'u-03', channel: 'email' });

    // One timeline event per decided pair, saying why; the progress events count every subscriber.
    const events = await store().sql.query<{ event: string; detail: Record<string, unknown> }>(
      `SELECT event, detail FROM timeline WHERE notification_id = $1 ORDER BY id`,
      [n.id],
    );
    const why = events
      .filter((e) => ['skipped', 'deferred', 'digested'].includes(e.event))
      .map((e) => `${e.event} ${e.detail.userId} ${e.detail.channel} ${e.detail.reason}`)
      .sort();
    expect(why).toEqual([
      'deferred u-02 in_app quiet_hours',
      'digested u-03 email digested',
      'skipped u-01 email opted_out',
      'skipped u-01 in_app opted_out',
      'skipped u-09 email capped',
    ]);
    expect(events.filter((e) => e.event === 'fanout_progress').map((e) => e.detail.recipients)).toEqual([4, 4, 2]);
    expect(events.find((e) => e.event === 'fanout_done')?.detail.recipients).toBe(10);
    // The deferred and leased in-app deliveries are announced (the earliest: the worker's, now).
    expect(published.length).toBeGreaterThan(0);
    // Counters moved only for those with an entry.
    const counters = await store().sql.query<{ user_id: string }>('SELECT user_id FROM inbox_counters ORDER BY 1');
    expect(counters.map((c) => c.user_id)).toEqual(await inboxOf(n.id));
  });

  it('a decider that decides nothing leaves every page as without a decider', async () => {
    await store().subscribe('quiet', USERS);
    const withDecider = topicNotification('quiet', ['in_app', 'email']);
    await accept(withDecider);
    const decider = new TableDecider({});
    await fanOut(store(), decider);
    const without = topicNotification('quiet', ['in_app', 'email']);
    await accept(without);
    await fanOut(store(), undefined);

    expect(decider.calls).toHaveLength(3);
    for (const n of [withDecider, without]) {
      expect(await inboxOf(n.id)).toEqual(USERS);
      const rows = await rowsOf(n.id);
      expect(rows.map((r) => `${r.user_id} ${r.channel} ${r.state}`)).toEqual(USERS.map((u) => `${u} email pending`));
    }
    const seqs = await store().sql.query<{ last_seq: string | number }>('SELECT last_seq FROM inbox_counters');
    expect(seqs.map((s) => Number(s.last_seq))).toEqual(USERS.map(() => 2));
  });

  it('a decider that says it may decide nothing is never asked: the pages read their subscribers themselves', async () => {
    await store().subscribe('nobody-decides', USERS);
    const n = topicNotification('nobody-decides', ['in_app', 'email']);
    await accept(n);
    // Its table would skip u-00's email: never applied, as the decider said it decides nothing.
    const decider = new TableDecider({ 'u-00 email': { kind: 'skip', reason: 'opted_out' } }, false);
    await fanOut(store(), decider);

    expect(decider.calls).toHaveLength(0);
    expect(await inboxOf(n.id)).toEqual(USERS);
    const rows = await rowsOf(n.id);
    expect(rows.map((r) => `${r.user_id} ${r.channel} ${r.state}`)).toEqual(USERS.map((u) => `${u} email pending`));
  });

  it('a page extends the lease; a page whose checkpoint moved since its subscribers were read writes nothing', async () => {
    await store().subscribe('moved', USERS);
    const n = topicNotification('moved', ['in_app']);
    await accept(n);
    const job = await store().claimFanout(30_000);
    if (!job) throw new Error('no job');
    const plan = [
      { channel: 'in_app' as const, at: new Date(), unless: null, inline: true, viaWorker: false, row: false },
    ];
    const first = await store().fanoutAudience(job, null, 4);
    expect(first).toEqual(USERS.slice(0, 4));
    const page = { limit: 4, plan, live: [], returnJobs: false };
    const r1 = await store().fanoutPage(job, {
      ...page,
      leaseMs: 600_000,
      decided: { after: null, users: first, decisions: undefined },
    });
    expect(r1).toMatchObject({ recipients: 4, checkpoint: 'u-03', done: false });
    // The page extended the lease (claimed for 30 s) in its own transaction.
    const [lease] = await store().sql.query<{ left_s: number }>(
      `SELECT extract(epoch FROM lease_until - now())::int AS left_s FROM fanout_jobs WHERE notification_id = $1`,
      [n.id],
    );
    expect(lease?.left_s).toBeGreaterThan(500);
    // The same page again (a stale read): refused, nothing written twice.
    expect(
      await store().fanoutPage(job, { ...page, decided: { after: null, users: first, decisions: undefined } }),
    ).toBeNull();
    expect(await inboxOf(n.id)).toEqual(USERS.slice(0, 4));
  });

  it('purgeTopics deletes old tombstones, finished jobs and old items, but not what a running job reads', async () => {
    const sql = store().sql;
    await store().subscribe('p', ['a', 'b', 'c']);
    await store().unsubscribe('p', ['b']); // before the job: not in its audience
    await sql.query(`UPDATE topic_subscriptions SET unsubscribed_at = now() - interval '1 hour' WHERE user_id = 'b'`);
    await store().subscribe('onread', ['x']);
    await accept(topicNotification('onread', ['in_app']), 0); // one topic item, no job
    const running = topicNotification('p', ['email']);
    await accept(running);
    await store().unsubscribe('p', ['c']); // after the job's cutoff: in its audience
    const finished = topicNotification('onread', ['email']);
    await accept(finished);
    await sql.query(`UPDATE fanout_jobs SET state = 'done' WHERE notification_id = $1`, [finished.id]);

    const later = new Date(Date.now() + 60_000);
    expect(await store().purgeTopics(new Date(Date.now() - 10 * HOUR))).toEqual({ tombstones: 0, jobs: 0, items: 0 });
    expect(await store().purgeTopics(later)).toEqual({ tombstones: 1, jobs: 1, items: 1 });
    const left = await sql.query<{ user_id: string }>(
      `SELECT user_id FROM topic_subscriptions WHERE topic = 'p' ORDER BY 1`,
    );
    expect(left.map((r) => r.user_id)).toEqual(['a', 'c']);
    expect(await store().countSubscribers('p')).toBe(1);

    // The running job still serves c; once it is done, c's tombstone and the job go.
    await fanOut(store(), undefined);
    expect((await rowsOf(running.id)).map((r) => r.user_id)).toEqual(['a', 'c']);
    expect(await store().purgeTopics(later)).toEqual({ tombstones: 1, jobs: 1, items: 0 });
    expect(await store().countSubscribers('p')).toBe(1);
  });
});
