/**
 * Digests after ingest, on every adapter (ADR 13, docs/api.md "Digests"): a digest whose window has
 * ended is sent once on its channel, under the digest's id, with its members' items and count —
 * rendered from the category's template when it has one — and recorded with every member in one
 * commit; an in-app digest is one inbox entry. Failures retry under the same id or end the digest
 * and its members; a lost lease records nothing. Eight runners at once, and one that dies
 * mid-send, still give exactly one digest (one identity) per user × window.
 */
import { expect, it } from 'vitest';
import { decisionKey } from '../src/core/decider.ts';
import { DigestRunner } from '../src/core/digest-runner.ts';
import { type ChannelRoute, type Dispatch, Dispatcher } from '../src/core/dispatch.ts';
import { HeraldEmitter } from '../src/core/events.ts';
import { uuidv7 } from '../src/core/ids.ts';
import type { SendResult } from '../src/core/ports-channels.ts';
import { TemplateCache } from '../src/core/template-cache.ts';
import { TemplateContentRenderer } from '../src/core/template-content.ts';
import type { Channel, DeliveryJob, InboxEntry, NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { forEachStore } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';

const HOUR = 3_600_000;
const RETRY = { baseMs: 20, maxAttempts: 3, maxDelayMs: 40 };
const silent = { error() {} };

/** A window that ended `agoMs` ago. */
function windowEndedAgo(agoMs: number, lengthMs = HOUR) {
  const windowEnd = new Date(Date.now() - agoMs);
  return { windowStart: new Date(windowEnd.getTime() - lengthMs), windowEnd };
}

/** Accepts one notification per user, each digested on `channels` for `window`. */
async function digested(
  store: SqlStore,
  users: string[],
  channels: Channel[],
  window: { windowStart: Date; windowEnd: Date },
  overrides: Partial<NewNotification> = {},
): Promise<NewNotification> {
  const n = newNotification({
    to: users,
    category: 'digest.test',
    channels,
    expiresAt: new Date(Date.now() + 24 * HOUR),
    ...overrides,
  });
  const per = new Map(
    users.flatMap((u) => channels.map((c) => [decisionKey(u, c), { kind: 'digest' as const, ...window }])),
  );
  const [out] = await store.accept([n], { decisions: new Map([[n.id, per]]) });
  if (out?.kind !== 'accepted') throw new Error('not accepted');
  return n;
}

/** A channel route that records every job and answers as `answer` says. */
function route(answer: (job: DeliveryJob, nth: number) => SendResult | Promise<SendResult> = () => ({ ok: true })) {
  const jobs: DeliveryJob[] = [];
  const r: ChannelRoute = {
    async send(job) {
      jobs.push(job);
      return answer(job, jobs.filter((j) => j.deliveryId === job.deliveryId).length);
    },
  };
  return { jobs, route: r };
}

function runner(
  store: SqlStore,
  routes: Map<Channel, ChannelRoute>,
  options: { events?: HeraldEmitter; leaseMs?: number; pollMs?: number; wrap?: (d: Dispatch) => Dispatch } = {},
) {
  const dispatcher = new Dispatcher(routes, [], new TemplateContentRenderer(new TemplateCache(store)));
  const dispatch = options.wrap ? options.wrap(dispatcher) : dispatcher;
  const { events = new HeraldEmitter(), leaseMs = 30_000 } = options;
  return new DigestRunner(store, dispatch, events, silent, {
    concurrency: 8,
    leaseMs,
    pollMs: options.pollMs ?? 20,
    retry: RETRY,
    graceMs: 0,
  });
}

async function runAll(r: DigestRunner): Promise<void> {
  while ((await r.runOnce()) > 0) await r.idle();
  await r.idle();
}

const digestsOf = (store: SqlStore, userId: string) =>
  store.sql.query<{ id: string; state: string; attempts: number; channel: string; last_error: string | null }>(
    'SELECT id, state, attempts, channel, last_error FROM digests WHERE user_id = $1 ORDER BY window_start, channel',
    [userId],
  );

const membersOf = (store: SqlStore, digestId: string) =>
  store.sql.query<{ state: string; reason: string | null; attempts: number; last_error: string | null }>(
    'SELECT state, reason, attempts, last_error FROM deliveries WHERE digest_id = $1',
    [digestId],
  );

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

forEachStore('digests', ({ store }) => {
  it('sends one digest per user × window under its id, newest items first, and records every member sent', async () => {
    const w1 = windowEndedAgo(1_000);
    const w0 = windowEndedAgo(HOUR + 1_000);
    const later = windowEndedAgo(-HOUR);
    const first = await digested(store(), ['ann', 'ben'], ['email'], w1, { title: 'first' });
    await digested(store(), ['ann', 'ben'], ['email'], w1, { title: 'second' });
    await digested(store(), ['ann'], ['email'], w1, { title: null, body: 'third, no title' });
    await digested(store(), ['ann'], ['email'], w0, { title: 'earlier window' });
    // Not due: its window ends in an hour.
    await digested(store(), ['ann'], ['email'], later, { title: 'later' });
    const email = route();
    const events = new HeraldEmitter();
    const sentEvents: string[] = [];
    events.on('delivery:sent', (e) => sentEvents.push(e.deliveryId));
    await runAll(runner(store(), new Map([['email', email.route]]), { events }));

    expect(email.jobs).toHaveLength(3);
    // One attempt event per digest (metrics), under the digest's id.
    expect(sentEvents.sort()).toEqual(email.jobs.map((j) => j.deliveryId).sort());
    const ann = await digestsOf(store(), 'ann');
    expect(ann.map((d) => d.state)).toEqual(['sent', 'sent', 'pending']);
    const annJob = email.jobs.find((j) => j.deliveryId === ann[1]?.id);
    // The digest's id is the job's identity (Message-ID, webhook-id) and its notification id.
    expect(annJob?.notification.id).toBe(ann[1]?.id);
    expect(annJob?.notification.title).toBe('3 new notifications');
    expect(annJob?.notification.body).toBe('third, no title\nsecond\nfirst');
    expect(annJob?.digest?.count).toBe(3);
    expect(annJob?.digest?.items.map((i) => i.title)).toEqual([null, 'second', 'first']);
    expect(email.jobs.find((j) => j.deliveryId === ann[0]?.id)?.notification.title).toBe('1 new notification');
    const [ben] = await digestsOf(store(), 'ben');
    expect(email.jobs.find((j) => j.deliveryId === ben?.id)?.digest?.count).toBe(2);

    expect(await membersOf(store(), ann[1]?.id as string)).toEqual(
      [0, 1, 2].map(() => ({ state: 'sent', reason: 'digested', attempts: 1, last_error: null })),
    );
    const v = await store().getNotification(first.id);
    expect(v?.deliveries.map((d) => [d.userId, d.status, d.reason])).toEqual([
      ['ann', 'sent', 'digested'],
      ['ben', 'sent', 'digested'],
    ]);
    const sent = v?.timeline.filter((t) => t.event === 'sent').map((t) => t.detail);
    expect(sent).toContainEqual({ userId: 'ann', channel: 'email', attempt: 1, digestId: ann[1]?.id });
  });

  it('an in-app digest is one inbox entry with the digest text and the user next seq', async () => {
    const events = new HeraldEmitter();
    const pushed: InboxEntry[] = [];
    events.on('inbox:entries', (e) => pushed.push(...e));
    const w = windowEndedAgo(1_000);
    const plain: NewNotification = {
      ...(await digested(store(), ['cat'], ['in_app'], w, { title: 'a' })),
      id: uuidv7(),
    };
    await store().accept([plain], { inAppUpTo: 100 });
    await digested(store(), ['cat'], ['in_app'], w, { title: 'b', data: { n: 2 } });
    await runAll(runner(store(), new Map(), { events }));

    const page = await store().listInbox('cat', { limit: 10 });
    expect(page.items.map((i) => [i.seq, i.title, i.body])).toEqual([
      [2, '2 new notifications', 'b\na'],
      [1, 'a', null],
    ]);
    // The entry points at the newest member: its data, category, priority and time.
    expect(page.items[0]?.data).toEqual({ n: 2 });
    expect(page.unreadCount).toBe(2);
    expect(pushed.map((e) => [e.userId, e.item.seq, e.item.title])).toEqual([['cat', 2, '2 new notifications']]);
    const [d] = await digestsOf(store(), 'cat');
    expect(d?.state).toBe('sent');
    expect((await membersOf(store(), d?.id as string)).map((m) => m.state)).toEqual(['sent', 'sent']);
  });

  it("renders the category's template with digest.items and digest.count", async () => {
    await store().putTemplate('digest.test', {
      defaultLocale: 'en',
      locales: {
        en: {
          title: '{% if digest %}{{ digest.count }} replies{% else %}{{ data.actor }} replied{% endif %}',
          body: '{% for i in digest.items %}{{ i.data.actor }}{% unless forloop.last %}, {% endunless %}{% endfor %}',
          email: { subject: 'Digest {{ digest.id }}: {{ digest.items[0].title }}' },
        },
      },
    });
    const w = windowEndedAgo(1_000);
    await digested(store(), ['dan'], ['email'], w, { data: { actor: 'Ada' } });
    await digested(store(), ['dan'], ['email'], w, { title: 'Hi', data: { actor: 'Bo' } });
    const email = route();
    await runAll(runner(store(), new Map([['email', email.route]])));
    const [d] = await digestsOf(store(), 'dan');
    const content = email.jobs[0]?.content;
    expect(content?.title).toBe('2 replies');
    expect(content?.body).toBe('Bo, Ada');
    expect(content?.email?.subject).toBe(`Digest ${d?.id}: Hi`);
  });

  it('retries a transient failure under the same id, and ends every member with a permanent one or a skip', async () => {
    const w = windowEndedAgo(1_000);
    await digested(store(), ['eve'], ['email', 'webhook', 'sms'], w);
    await digested(store(), ['eve'], ['email', 'webhook', 'sms'], w);
    const email = route((_job, nth) => (nth === 1 ? { ok: false, permanent: false, error: 'busy' } : { ok: true }));
    const webhook = route(() => ({ ok: false, permanent: true, error: 'HTTP 400' }));
    const r = runner(
      store(),
      new Map<Channel, ChannelRoute>([
        ['email', email.route],
        ['webhook', webhook.route],
      ]),
    );
    // One take: the retry's backoff (20–40 ms) must not be taken by this pass.
    expect(await r.runOnce()).toBe(3);
    await r.idle();
    const byChannel = async () => new Map((await digestsOf(store(), 'eve')).map((d) => [d.channel, d]));
    let ds = await byChannel();
    expect(ds.get('email')).toMatchObject({ state: 'pending', attempts: 1, last_error: 'busy' });
    expect(await membersOf(store(), ds.get('email')?.id as string)).toEqual(
      [0, 1].map(() => ({ state: 'pending', reason: 'digested', attempts: 0, last_error: null })),
    );
    expect(ds.get('webhook')).toMatchObject({ state: 'failed', attempts: 1 });
    expect((await membersOf(store(), ds.get('webhook')?.id as string)).map((m) => [m.state, m.last_error])).toEqual([
      ['failed', 'HTTP 400'],
      ['failed', 'HTTP 400'],
    ]);
    // No SMS provider: skipped with the reason, like a delivery.
    expect(ds.get('sms')?.state).toBe('skipped');
    expect((await membersOf(store(), ds.get('sms')?.id as string)).map((m) => [m.state, m.reason])).toEqual([
      ['skipped', 'no_provider'],
      ['skipped', 'no_provider'],
    ]);

    // A member accepted while the digest waits for its retry joins it (the digest is pending again).
    await digested(store(), ['eve'], ['email'], w);
    await sleep(RETRY.maxDelayMs + 20);
    await runAll(r);
    ds = await byChannel();
    expect(ds.get('email')).toMatchObject({ state: 'sent', attempts: 2 });
    expect(email.jobs.map((j) => [j.deliveryId, j.digest?.count])).toEqual([
      [ds.get('email')?.id, 2],
      [ds.get('email')?.id, 3],
    ]);
    expect((await membersOf(store(), ds.get('email')?.id as string)).map((m) => [m.state, m.attempts])).toEqual([
      ['sent', 2],
      ['sent', 2],
      ['sent', 2],
    ]);
  });

  it('leaves out members that expired or were cancelled; a digest left empty sends nothing', async () => {
    const w = windowEndedAgo(1_000);
    const expired = await digested(store(), ['gus'], ['email'], w, { expiresAt: new Date(Date.now() - 1) });
    await digested(store(), ['gus'], ['email'], w, { title: 'kept' });
    const cancelled = await digested(store(), ['hal'], ['email'], w);
    expect(await store().cancel(cancelled.id)).toBe('cancelled');
    const email = route();
    await runAll(runner(store(), new Map([['email', email.route]])));
    expect(email.jobs.map((j) => [j.userId, j.digest?.count, j.notification.body])).toEqual([['gus', 1, 'kept']]);
    const v = await store().getNotification(expired.id);
    expect(v?.deliveries.map((d) => [d.status, d.reason])).toEqual([['skipped', 'expired']]);
    expect(v?.timeline.find((t) => t.event === 'skipped')?.detail).toMatchObject({ reason: 'expired' });
    const [hal] = await digestsOf(store(), 'hal');
    expect(hal).toMatchObject({ state: 'skipped', last_error: 'the digest has no members left' });
  });

  it('a runner that lost its lease records nothing; the digest is sent by whoever holds it', async () => {
    await digested(store(), ['fay'], ['email', 'in_app'], windowEndedAgo(1_000));
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const slow = route();
    // Every send of this runner (in-app too, whose send is the store write) waits until released.
    const slowRunner = runner(store(), new Map([['email', slow.route]]), {
      wrap: (d) => ({
        async send(j) {
          await held;
          return d.send(j);
        },
      }),
    });
    expect(await slowRunner.runOnce()).toBe(2);
    // Its process "died": the leases are taken back and another runner sends both digests.
    expect(await store().reclaimExpiredDigests(10, { unexpired: true })).toBe(2);
    const fast = route();
    await runAll(runner(store(), new Map([['email', fast.route]])));
    release();
    await slowRunner.idle();
    const ds = await digestsOf(store(), 'fay');
    expect(ds.map((d) => [d.channel, d.state, d.attempts])).toEqual([
      ['email', 'sent', 2],
      ['in_app', 'sent', 2],
    ]);
    // The repeat carried the same identity.
    expect([...slow.jobs, ...fast.jobs].map((j) => j.deliveryId)).toEqual([ds[0]?.id, ds[0]?.id]);
    const inbox = await store().sql.query('SELECT seq FROM inbox WHERE user_id = $1', ['fay']);
    expect(inbox).toHaveLength(1);
    const [events] = await store().sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM timeline WHERE event = 'sent' AND detail->>'userId' = 'fay'`,
    );
    expect(events?.n).toBe(2);
  });

  it('8 runners at once, and one that dies mid-send: exactly one digest (one identity) per user × window', async () => {
    const users = Array.from({ length: 30 }, (_, i) => `u${i}`);
    const windows = [windowEndedAgo(HOUR + 1_000), windowEndedAgo(1_000)];
    for (const w of windows) {
      await digested(store(), users, ['webhook', 'in_app'], w, { title: 'x' });
      await digested(store(), users, ['webhook', 'in_app'], w, { title: 'y' });
    }
    // Long enough that only the dead runner's leases run out, even on a busy machine (the embedded store is one connection).
    const leaseMs = 4_000;
    // The dying runner's sends reach the receiver (webhook) and never return: its process was killed
    // before it recorded anything, in-app ones included.
    const received: string[] = [];
    const dying: DeliveryJob[] = [];
    const dead = runner(store(), new Map(), {
      leaseMs,
      wrap: () => ({
        send(job) {
          dying.push(job);
          if (job.channel === 'webhook') received.push(job.deliveryId);
          return new Promise<SendResult>(() => {});
        },
      }),
    });
    expect(await dead.runOnce()).toBe(8);
    const alive = route(async (job) => {
      received.push(job.deliveryId);
      await sleep(5);
      return { ok: true };
    });
    const runners = Array.from({ length: 8 }, () => runner(store(), new Map([['webhook', alive.route]]), { leaseMs }));
    for (const r of runners) r.start();
    const reclaimer = setInterval(
      () =>
        void store()
          .reclaimExpiredDigests(100)
          .catch(() => {}),
      100,
    );
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const [left] = await store().sql.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM digests WHERE state <> 'sent'`,
        );
        if (left?.n === 0) break;
        if (Date.now() > deadline) throw new Error(`${left?.n} digests not sent`);
        await sleep(50);
      }
    } finally {
      clearInterval(reclaimer);
      await Promise.all(runners.map((r) => r.stop()));
    }
    const digests = await store().sql.query<{ id: string; user_id: string; channel: string }>(
      'SELECT id, user_id, channel FROM digests',
    );
    expect(digests).toHaveLength(users.length * windows.length * 2);
    const webhookIds = new Set(digests.filter((d) => d.channel === 'webhook').map((d) => d.id));
    // Exactly one identity per user × window at the receiver. Every request is one attempt of one
    // digest under its id: a repeat only follows a lease that ran out (the dead runner's, or on a busy
    // machine a live runner's that took longer than its lease), each counted in the digest's attempts.
    expect(new Set(received)).toEqual(webhookIds);
    const [attempts] = await store().sql.query<{ n: number }>(
      `SELECT sum(attempts)::int AS n FROM digests WHERE channel = 'webhook'`,
    );
    expect(received.length).toBe(attempts?.n);
    const repeats = received.length - webhookIds.size;
    const heldByDead = dying.filter((j) => j.channel === 'webhook').length;
    expect(repeats).toBeGreaterThanOrEqual(heldByDead);
    expect(new Set(dying.map((j) => j.deliveryId)).size).toBe(dying.length);
    // In-app: one inbox entry per user × window, each with 2 members.
    const entries = await store().sql.query<{ user_id: string; n: number }>(
      'SELECT user_id, count(*)::int AS n FROM inbox GROUP BY user_id',
    );
    expect(entries).toHaveLength(users.length);
    expect(entries.every((e) => e.n === windows.length)).toBe(true);
    const [members] = await store().sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM deliveries WHERE digest_id IS NOT NULL AND state = 'sent'`,
    );
    expect(members?.n).toBe(users.length * windows.length * 2 * 2);
    console.log(
      `digests[8 runners]: ${digests.length} digests, ${received.length} webhook requests, ` +
        `${repeats} repeats, all under the same id (the dead runner held ${heldByDead} webhook and ` +
        `${dying.length - heldByDead} in-app digests; each in-app one is still one inbox entry)`,
    );
  });
});
