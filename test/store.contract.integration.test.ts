/**
 * The Store contract, run against every adapter (PGlite embedded, PostgreSQL server). A new store
 * adapter is done when this suite passes on it. Every test gets a fresh, empty database.
 */
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { uuidv7 } from '../src/core/ids.ts';
import type { DeliveryJob, DeliveryView, InboxDelivery, NewNotification, UserProfile } from '../src/core/types.ts';
import { UNREAD_ONLY } from '../src/store/sql-inbox.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { forEachStore } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';

const HOUR = 3600_000;
const LEASE = 60_000;

function request(overrides: Partial<NewNotification> = {}): NewNotification {
  return newNotification({
    to: ['alice'],
    category: 'order.shipped',
    title: 'Your order shipped',
    body: 'It arrives tomorrow.',
    data: { orderId: 42, lines: [{ sku: 'A-1', qty: 2 }], gift: false, note: null },
    ...overrides,
  });
}

/** Accepts one notification and returns its id (failing the test unless it was accepted). */
async function acceptOne(store: SqlStore, overrides: Partial<NewNotification> = {}): Promise<string> {
  const n = request(overrides);
  const [out] = await store.accept([n]);
  expect(out?.kind).toBe('accepted');
  return n.id;
}

async function deliveryIds(store: SqlStore, notificationId: string): Promise<string[]> {
  const rows = await store.sql.query<{ id: string }>(
    'SELECT id FROM deliveries WHERE notification_id = $1 ORDER BY user_id, channel',
    [notificationId],
  );
  return rows.map((r) => r.id);
}

async function countRows(store: SqlStore, table: 'notifications' | 'deliveries' | 'inbox' | 'idempotency_keys') {
  const [r] = await store.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r?.n ?? 0;
}

async function view(store: SqlStore, notificationId: string) {
  const v = await store.getNotification(notificationId);
  if (!v) throw new Error(`notification ${notificationId} not found`);
  return v;
}

async function delivery(store: SqlStore, notificationId: string, deliveryId: string): Promise<DeliveryView> {
  const d = (await view(store, notificationId)).deliveries.find((x) => x.id === deliveryId);
  if (!d) throw new Error(`delivery ${deliveryId} not found`);
  return d;
}

/**
 * Accepts a notification and leases all its deliveries; returns the jobs ordered by user, channel.
 * Its channels default to `webhook` (in-app deliveries are never leased: see acceptAndDeliver).
 */
async function acceptAndStart(store: SqlStore, overrides: Partial<NewNotification> = {}) {
  const id = await acceptOne(store, { channels: ['webhook'], ...overrides });
  const ids = await deliveryIds(store, id);
  const { jobs, inbox } = await store.startAttempts({ ids }, LEASE);
  expect(inbox).toEqual([]);
  expect(jobs).toHaveLength(ids.length);
  return { id, jobs: ids.map((d) => jobs.find((j) => j.deliveryId === d) as DeliveryJob) };
}

/**
 * Accepts an in-app notification and takes its deliveries, which the store completes at once; returns
 * their inbox deliveries ordered by user.
 */
async function acceptAndDeliver(store: SqlStore, overrides: Partial<NewNotification> = {}) {
  const id = await acceptOne(store, { ...overrides, channels: ['in_app'] });
  const ids = await deliveryIds(store, id);
  const { jobs, inbox } = await store.startAttempts({ ids }, LEASE);
  expect(jobs).toEqual([]);
  expect(inbox).toHaveLength(ids.length);
  return { id, ids, inbox: ids.map((d) => inbox.find((e) => e.deliveryId === d) as InboxDelivery) };
}

/** Inbox deliveries as [userId, seq] pairs, ordered by user then seq. */
function seqsOf(inbox: readonly InboxDelivery[]): [string, number][] {
  return inbox
    .map((e): [string, number] => [e.userId, e.item.seq])
    .sort((x, y) => x[0].localeCompare(y[0]) || x[1] - y[1]);
}

/** The ids taken by a startAttempts call, leased or completed in-app, sorted. */
function takenIds(work: { jobs: readonly DeliveryJob[]; inbox: readonly InboxDelivery[] }): string[] {
  return [...work.jobs.map((j) => j.deliveryId), ...work.inbox.map((e) => e.deliveryId)].sort();
}

const NOTHING = { jobs: [], inbox: [] };

function sent(job: DeliveryJob) {
  return { deliveryId: job.deliveryId, leaseToken: job.leaseToken, result: 'sent' as const, detail: null };
}

function dead(job: DeliveryJob, error = 'gave up') {
  return { deliveryId: job.deliveryId, leaseToken: job.leaseToken, result: 'dead' as const, error };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

forEachStore('Store contract', ({ kind, store }) => {
  // ─── accept ────────────────────────────────────────────────────────────────────────────────

  it('accept with inAppUpTo delivers small in-app notifications in the accepting transaction', async () => {
    const small = request({ to: ['ann', 'bob'], channels: ['in_app', 'webhook'] });
    const big = request({ to: ['ann', 'bob', 'cid'], channels: ['in_app'] });
    const later = request({ to: ['ann'], sendAt: new Date(Date.now() + HOUR) });
    const prior = request({ to: ['ann'] });
    await store().accept([prior]);
    const out = await store().accept([small, big, later], { inAppUpTo: 2 });

    // small: its in-app deliveries come back delivered (ann's second seq: `prior` was never taken, so 1),
    // its webhook deliveries are left to announce.
    const [s, b, l] = out;
    if (s?.kind !== 'accepted' || b?.kind !== 'accepted' || l?.kind !== 'accepted') throw new Error('not accepted');
    expect(seqsOf(s.delivered)).toEqual([
      ['ann', 1],
      ['bob', 1],
    ]);
    expect(s.delivered.every((d) => d.item.id === small.id && d.lane === 'normal' && d.attempt === 1)).toBe(true);
    expect(s.jobs).toHaveLength(2);
    const states = (await view(store(), small.id)).deliveries.map((d) => [d.userId, d.channel, d.status]).sort();
    expect(states).toEqual([
      ['ann', 'in_app', 'sent'],
      ['ann', 'webhook', 'pending'],
      ['bob', 'in_app', 'sent'],
      ['bob', 'webhook', 'pending'],
    ]);
    expect(s.jobs.map((j) => j.id).sort()).toEqual(
      (await view(store(), small.id)).deliveries
        .filter((d) => d.channel === 'webhook')
        .map((d) => d.id)
        .sort(),
    );
    // More recipients than inAppUpTo, or scheduled: nothing delivered, everything pending for a worker.
    expect(b.delivered).toEqual([]);
    expect(b.jobs).toHaveLength(3);
    expect(l.delivered).toEqual([]);
    expect((await view(store(), big.id)).stateCounts).toEqual({ pending: 3 });
    expect((await view(store(), later.id)).stateCounts).toEqual({ pending: 1 });
    // The inbox has exactly the delivered entries, and a later take does not deliver them again.
    const annInbox = (await store().listInbox('ann', { limit: 10 })).items;
    expect(annInbox.map((i) => [i.id, i.seq])).toEqual([[small.id, 1]]);
    // What the accept hands to sockets is the entry the inbox shows.
    expect(s.delivered.find((d) => d.userId === 'ann')?.item).toEqual(annInbox[0]);
    const again = await store().startAttempts({ ids: s.delivered.map((d) => d.deliveryId) }, LEASE);
    expect(again).toEqual(NOTHING);
    // Without the option nothing is delivered at accept.
    const plain = request({ to: ['dan'] });
    const [p] = await store().accept([plain]);
    expect(p?.kind === 'accepted' && p.delivered).toEqual([]);
    expect((await view(store(), plain.id)).stateCounts).toEqual({ pending: 1 });
  });

  it('accept with inAppUpTo gives a user several seqs in one batch in notification order', async () => {
    const batch = [request({ to: ['gus', 'hal'] }), request({ to: ['gus'] }), request({ to: ['hal', 'gus'] })];
    const out = await store().accept(batch, { inAppUpTo: 5 });
    const delivered = out.flatMap((o) => (o.kind === 'accepted' ? o.delivered : []));
    // Handed to sockets in seq order per user, each entry with its own notification.
    expect(delivered.map((d) => [d.userId, d.item.seq, d.item.id])).toEqual([
      ['gus', 1, batch[0]?.id],
      ['hal', 1, batch[0]?.id],
      ['gus', 2, batch[1]?.id],
      ['hal', 2, batch[2]?.id],
      ['gus', 3, batch[2]?.id],
    ]);
    const inbox = (await store().listInbox('gus', { limit: 10 })).items.map((i) => [i.seq, i.id]);
    expect(inbox).toEqual([
      [3, batch[2]?.id],
      [2, batch[1]?.id],
      [1, batch[0]?.id],
    ]);
    expect(await store().inboxState('gus')).toEqual({ lastSeq: 3, unreadCount: 3 });
  });

  it('accept creates one pending delivery per recipient × channel', async () => {
    const n = request({
      to: ['alice', 'bob', 'carol'],
      channels: ['in_app', 'email'],
      priority: 'high',
      groupKey: 'orders',
    });
    const [out] = await store().accept([n]);
    expect(out).toMatchObject({ kind: 'accepted', answer: { id: n.id, status: 'accepted', recipients: 3 } });

    const v = await view(store(), n.id);
    expect(v).toMatchObject({
      id: n.id,
      category: n.category,
      priority: 'high',
      channels: ['in_app', 'email'],
      title: n.title,
      body: n.body,
      data: n.data,
      sendAt: null,
      groupKey: 'orders',
      createdAt: n.createdAt,
      cancelledAt: null,
      recipients: 3,
      stateCounts: { pending: 6 },
      started: 0,
      nextCursor: null,
    });
    const pairs = v.deliveries.map((d) => `${d.userId}/${d.channel}`).sort();
    expect(pairs).toEqual(['alice/email', 'alice/in_app', 'bob/email', 'bob/in_app', 'carol/email', 'carol/in_app']);
    for (const d of v.deliveries) expect(d).toMatchObject({ status: 'pending', attempts: 0, lastError: null });
  });

  it('accept answers scheduled for a future sendAt and accepted otherwise', async () => {
    const later = new Date(Date.now() + HOUR);
    const future = request({ sendAt: later });
    const past = request({ sendAt: new Date(Date.now() - 60_000) });
    const now = request();
    const out = await store().accept([future, past, now]);
    expect(out.map((o) => (o.kind === 'conflict' ? o.kind : o.answer.status))).toEqual([
      'scheduled',
      'accepted',
      'accepted',
    ]);

    const v = await view(store(), future.id);
    expect(v.sendAt).toEqual(later);
    expect(v.deliveries[0]?.nextAttemptAt).toEqual(later);
    expect(v.timeline.map((t) => t.event)).toEqual(['accepted', 'scheduled']);
  });

  it('accept replays the first answer for the same key and body, creating nothing', async () => {
    const first = request({ to: ['alice', 'bob'], idempotencyKey: 'k-1', requestHash: 'h-1' });
    const [a] = await store().accept([first]);
    expect(a?.kind).toBe('accepted');

    const retry = request({ to: ['alice', 'bob'], idempotencyKey: 'k-1', requestHash: 'h-1' });
    const [b] = await store().accept([retry]);
    expect(b).toEqual({ kind: 'replayed', answer: { id: first.id, status: 'accepted', recipients: 2 } });
    expect(await store().getNotification(retry.id)).toBeNull();
    expect(await countRows(store(), 'notifications')).toBe(1);
    expect(await countRows(store(), 'deliveries')).toBe(2);
  });

  it('accept reports a conflict for the same key with another body', async () => {
    const first = request({ idempotencyKey: 'k-1', requestHash: 'h-1' });
    await store().accept([first]);
    const other = request({ idempotencyKey: 'k-1', requestHash: 'h-2' });
    const [out] = await store().accept([other]);
    expect(out).toEqual({ kind: 'conflict', existingId: first.id });
    expect(await store().getNotification(other.id)).toBeNull();
    expect(await countRows(store(), 'notifications')).toBe(1);
  });

  it('accept treats a key repeated within one batch as retries of its first use', async () => {
    const a = request({ idempotencyKey: 'k-1', requestHash: 'h-1' });
    const b = request({ idempotencyKey: 'k-1', requestHash: 'h-1' });
    const c = request({ idempotencyKey: 'k-1', requestHash: 'h-2' });
    const d = request();
    const out = await store().accept([a, b, c, d]);
    expect(out[0]).toMatchObject({ kind: 'accepted', answer: { id: a.id } });
    expect(out[1]).toEqual({ kind: 'replayed', answer: { id: a.id, status: 'accepted', recipients: 1 } });
    expect(out[2]).toEqual({ kind: 'conflict', existingId: a.id });
    expect(out[3]).toMatchObject({ kind: 'accepted', answer: { id: d.id } });
    expect(await countRows(store(), 'notifications')).toBe(2);
  });

  it('accept lets a key be used again once it is older than the idempotency window', async () => {
    const old = request({ idempotencyKey: 'k-1', requestHash: 'h-1', createdAt: new Date(Date.now() - 25 * HOUR) });
    await store().accept([old]);
    const fresh = request({ idempotencyKey: 'k-1', requestHash: 'h-1' });
    const [out] = await store().accept([fresh]);
    expect(out).toMatchObject({ kind: 'accepted', answer: { id: fresh.id } });
    const [again] = await store().accept([request({ idempotencyKey: 'k-1', requestHash: 'h-1' })]);
    expect(again).toMatchObject({ kind: 'replayed', answer: { id: fresh.id } });
  });

  it('concurrent accepts with one key create exactly one notification', async () => {
    const attempts = Array.from({ length: 8 }, () =>
      request({ to: ['alice', 'bob'], idempotencyKey: 'k-race', requestHash: 'h-1' }),
    );
    const outs = (await Promise.all(attempts.map((n) => store().accept([n])))).flat();
    const accepted = outs.filter((o) => o.kind === 'accepted');
    expect(accepted).toHaveLength(1);
    const winner = accepted[0]?.answer.id;
    for (const o of outs) expect(o).toMatchObject({ answer: { id: winner } });
    expect(outs.filter((o) => o.kind === 'replayed')).toHaveLength(7);
    expect(await countRows(store(), 'notifications')).toBe(1);
    expect(await countRows(store(), 'deliveries')).toBe(2);
  });

  // ─── getNotification ───────────────────────────────────────────────────────────────────────

  it('getNotification answers null for unknown ids and non-uuids', async () => {
    await acceptOne(store());
    expect(await store().getNotification(uuidv7())).toBeNull();
    expect(await store().getNotification('not-a-uuid')).toBeNull();
    expect(await store().getNotification('')).toBeNull();
  });

  it('getNotification pages deliveries with a cursor', async () => {
    const to = Array.from({ length: 25 }, (_, i) => `user-${String(i).padStart(2, '0')}`);
    const id = await acceptOne(store(), { to });
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const page = await store().getNotification(id, { cursor, limit: 10 });
      if (!page) throw new Error('notification vanished');
      expect(page.stateCounts).toEqual({ pending: 25 });
      sizes.push(page.deliveries.length);
      seen.push(...page.deliveries.map((d) => d.id));
      cursor = page.nextCursor;
    } while (cursor !== null && sizes.length < 10);
    expect(sizes).toEqual([10, 10, 5]);
    expect(new Set(seen).size).toBe(25);
    expect([...seen].sort()).toEqual([...(await deliveryIds(store(), id))].sort());
  });

  it('getNotification counts deliveries per state and starts its timeline with accepted', async () => {
    const { id, jobs } = await acceptAndStart(store(), { to: ['alice', 'bob', 'carol'] });
    const [a, b] = jobs as [DeliveryJob, DeliveryJob, DeliveryJob];
    await store().finishAttempts([sent(a), dead(b)]);
    const v = await view(store(), id);
    expect(v.stateCounts).toEqual({ sent: 1, dead: 1, processing: 1 });
    expect(v.started).toBe(3);
    expect(v.timeline[0]).toMatchObject({ event: 'accepted', at: v.createdAt });
    expect(v.timeline.map((t) => t.event)).toEqual(['accepted', 'sent', 'dead']);
  });

  // ─── the delivery state machine ────────────────────────────────────────────────────────────

  it('startAttempts leases only pending deliveries that are due', async () => {
    const n = request({ to: ['alice', 'bob'], priority: 'high', channels: ['email'], groupKey: 'g' });
    await store().accept([n]);
    const later = await acceptOne(store(), {
      channels: ['email', 'in_app'],
      sendAt: new Date(Date.now() + HOUR),
    });
    const due = await deliveryIds(store(), n.id);
    const scheduled = await deliveryIds(store(), later);

    const { jobs, inbox } = await store().startAttempts({ ids: [...due, ...scheduled] }, LEASE);
    expect(inbox).toEqual([]);
    expect(jobs.map((j) => j.deliveryId).sort()).toEqual([...due].sort());
    const job = jobs.find((j) => j.userId === 'alice');
    expect(job).toMatchObject({
      attempt: 1,
      channel: 'email',
      lane: 'high',
      userId: 'alice',
      notification: {
        id: n.id,
        category: n.category,
        priority: 'high',
        title: n.title,
        body: n.body,
        data: n.data,
        groupKey: 'g',
        createdAt: n.createdAt,
      },
      user: null,
    });
    expect(new Set(jobs.map((j) => j.leaseToken)).size).toBe(2);
    expect(await delivery(store(), n.id, job?.deliveryId as string)).toMatchObject({
      status: 'processing',
      attempts: 1,
    });
    expect((await view(store(), later)).stateCounts).toEqual({ pending: 2 });
    expect(await countRows(store(), 'inbox')).toBe(0);
  });

  it('startAttempts includes the recipient profile when the user is known, but not the chatWebhookUrl', async () => {
    const { chatWebhookUrl, ...taken }: UserProfile = {
      id: 'alice',
      email: 'alice@example.com',
      phone: '+15550100',
      timezone: 'Europe/Paris',
      locale: 'fr',
      webhookUrl: null,
      chatWebhookUrl: 'https://chat.example.com/alice',
    };
    await store().upsertUser({ ...taken, chatWebhookUrl });
    const { jobs } = await acceptAndStart(store(), { to: ['alice', 'bob'] });
    // The take statement does not read it (JobUser): the chat provider looks it up when it sends.
    expect(jobs.map((j) => j.user)).toEqual([taken, null]);
  });

  it('startAttempts hands a delivery out once, even to concurrent callers', async () => {
    const id = await acceptOne(store(), { to: ['a', 'b', 'c', 'd'], channels: ['webhook'] });
    const ids = await deliveryIds(store(), id);
    const [x, y] = await Promise.all([store().startAttempts({ ids }, LEASE), store().startAttempts({ ids }, LEASE)]);
    expect([...x.inbox, ...y.inbox]).toEqual([]);
    const all = [...x.jobs, ...y.jobs].map((j) => j.deliveryId);
    expect(all.sort()).toEqual([...ids].sort());
    expect(await store().startAttempts({ ids }, LEASE)).toEqual(NOTHING);
    expect((await view(store(), id)).stateCounts).toEqual({ processing: 4 });
  });

  it('finishAttempts ignores a wrong or stale lease token', async () => {
    const { id, jobs } = await acceptAndStart(store(), { to: ['alice', 'bob'] });
    const [a, b] = jobs as [DeliveryJob, DeliveryJob];

    expect(await store().finishAttempts([{ ...sent(a), leaseToken: randomUUID() }, sent(b)])).toEqual([false, true]);
    expect(await delivery(store(), id, a.deliveryId)).toMatchObject({ status: 'processing', attempts: 1 });
    expect(await delivery(store(), id, b.deliveryId)).toMatchObject({ status: 'sent' });

    // b's token was used up by its outcome: a late second outcome changes nothing.
    expect(await store().finishAttempts([dead(b)])).toEqual([false]);
    expect(await delivery(store(), id, b.deliveryId)).toMatchObject({ status: 'sent', lastError: null });

    expect(await store().finishAttempts([sent(a)])).toEqual([true]);
    expect((await view(store(), id)).stateCounts).toEqual({ sent: 2 });
  });

  it('finishAttempts records a sent outcome with the provider detail', async () => {
    const { id, jobs } = await acceptAndStart(store());
    const [job] = jobs as [DeliveryJob];
    await store().finishAttempts([{ ...sent(job), detail: { messageId: 'm-1' } }]);
    const v = await view(store(), id);
    expect(v.deliveries[0]).toMatchObject({ status: 'sent', attempts: 1, lastError: null, nextAttemptAt: null });
    expect(v.timeline.at(-1)).toMatchObject({
      event: 'sent',
      detail: { userId: 'alice', channel: 'webhook', attempt: 1, messageId: 'm-1' },
    });
  });

  it('a retry returns the delivery to pending until its next attempt time', async () => {
    const { id, jobs } = await acceptAndStart(store());
    const [job] = jobs as [DeliveryJob];
    const next = new Date(Date.now() + HOUR);
    const ok = await store().finishAttempts([
      {
        deliveryId: job.deliveryId,
        leaseToken: job.leaseToken,
        result: 'retry',
        error: 'smtp 451',
        nextAttemptAt: next,
      },
    ]);
    expect(ok).toEqual([true]);

    const v = await view(store(), id);
    expect(v.deliveries[0]).toMatchObject({
      status: 'pending',
      attempts: 1,
      lastError: 'smtp 451',
      nextAttemptAt: next,
    });
    expect(v.timeline.at(-1)).toMatchObject({
      event: 'attempt_failed',
      detail: { userId: 'alice', channel: 'webhook', attempt: 1, error: 'smtp 451', nextAttemptAt: next.toISOString() },
    });
    expect(await store().startAttempts({ ids: [job.deliveryId] }, LEASE)).toEqual(NOTHING);
  });

  it('a retry that is due is leased again as the next attempt', async () => {
    const { jobs } = await acceptAndStart(store());
    const [job] = jobs as [DeliveryJob];
    await store().finishAttempts([
      {
        deliveryId: job.deliveryId,
        leaseToken: job.leaseToken,
        result: 'retry',
        error: 'timeout',
        nextAttemptAt: new Date(),
      },
    ]);
    const {
      jobs: [again],
    } = await store().startAttempts({ ids: [job.deliveryId] }, LEASE);
    expect(again).toMatchObject({ deliveryId: job.deliveryId, attempt: 2 });
    expect(again?.leaseToken).not.toBe(job.leaseToken);
  });

  it('a deferred delivery goes back to pending without using up an attempt, keeping its last error', async () => {
    const { id, jobs } = await acceptAndStart(store());
    const [job] = jobs as [DeliveryJob];
    await store().finishAttempts([
      {
        deliveryId: job.deliveryId,
        leaseToken: job.leaseToken,
        result: 'retry',
        error: 'HTTP 503',
        nextAttemptAt: new Date(),
      },
    ]);
    const {
      jobs: [second],
    } = await store().startAttempts({ ids: [job.deliveryId] }, LEASE);
    expect(second).toMatchObject({ attempt: 2 });
    const next = new Date(Date.now() + HOUR);
    const ok = await store().finishAttempts([
      {
        deliveryId: job.deliveryId,
        leaseToken: second?.leaseToken as string,
        result: 'deferred',
        nextAttemptAt: next,
        destination: 'https://hooks.example.com',
      },
    ]);
    expect(ok).toEqual([true]);
    const v = await view(store(), id);
    expect(v.deliveries[0]).toMatchObject({
      status: 'pending',
      attempts: 1,
      lastError: 'HTTP 503',
      nextAttemptAt: next,
    });
    expect(v.timeline.at(-1)).toMatchObject({
      event: 'deferred',
      detail: {
        userId: 'alice',
        channel: 'webhook',
        destination: 'https://hooks.example.com',
        nextAttemptAt: next.toISOString(),
      },
    });
    // Not due before its time; then taken again as the second attempt, not the third.
    expect(await store().startAttempts({ ids: [job.deliveryId] }, LEASE)).toEqual(NOTHING);
    await store().sql.query('UPDATE deliveries SET next_attempt_at = now() WHERE id = $1', [job.deliveryId]);
    const {
      jobs: [again],
    } = await store().startAttempts({ ids: [job.deliveryId] }, LEASE);
    expect(again).toMatchObject({ deliveryId: job.deliveryId, attempt: 2 });
  });

  it('failed and dead deliveries are dead letters', async () => {
    const { id, jobs } = await acceptAndStart(store(), { to: ['alice', 'bob', 'carol'], channels: ['sms'] });
    const [a, b, c] = jobs as [DeliveryJob, DeliveryJob, DeliveryJob];
    await store().finishAttempts([
      { deliveryId: a.deliveryId, leaseToken: a.leaseToken, result: 'failed', error: 'invalid number' },
      dead(b, 'retries exhausted'),
      sent(c),
    ]);
    const { items, nextCursor } = await store().listDeadLetters({ limit: 10 });
    expect(nextCursor).toBeNull();
    expect(items.sort((x, y) => x.userId.localeCompare(y.userId))).toEqual([
      {
        id: a.deliveryId,
        notificationId: id,
        userId: 'alice',
        channel: 'sms',
        status: 'failed',
        attempts: 1,
        lastError: 'invalid number',
        updatedAt: expect.any(Date),
      },
      {
        id: b.deliveryId,
        notificationId: id,
        userId: 'bob',
        channel: 'sms',
        status: 'dead',
        attempts: 1,
        lastError: 'retries exhausted',
        updatedAt: expect.any(Date),
      },
    ]);
  });

  it('listDeadLetters pages with a cursor, without overlap', async () => {
    // Two batches: deliveries finished in one transaction share their updated_at.
    const first = await acceptAndStart(store(), { to: ['a', 'b', 'c', 'd', 'e'] });
    await store().finishAttempts(first.jobs.map((j) => dead(j)));
    const second = await acceptAndStart(store(), { to: ['f', 'g'] });
    await store().finishAttempts(second.jobs.map((j) => dead(j)));
    await acceptAndStart(store(), { to: ['h'] }); // processing: not a dead letter

    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const page = await store().listDeadLetters({ limit: 2, cursor });
      sizes.push(page.items.length);
      seen.push(...page.items.map((d) => d.id));
      cursor = page.nextCursor;
    } while (cursor !== null && sizes.length < 10);
    expect(sizes).toEqual([2, 2, 2, 1]);
    expect(seen.sort()).toEqual([...first.jobs, ...second.jobs].map((j) => j.deliveryId).sort());
  });

  it('replay brings a dead letter back to pending with its attempts reset, once', async () => {
    const { id, jobs } = await acceptAndStart(store(), { priority: 'critical' });
    const [job] = jobs as [DeliveryJob];
    await store().finishAttempts([dead(job)]);

    expect(await store().replay(job.deliveryId)).toEqual({ result: 'replayed', lane: 'critical' });
    expect(await delivery(store(), id, job.deliveryId)).toMatchObject({ status: 'pending', attempts: 0 });
    expect((await view(store(), id)).timeline.at(-1)).toMatchObject({ event: 'replayed' });
    expect((await store().listDeadLetters({ limit: 10 })).items).toEqual([]);
    expect(await store().replay(job.deliveryId)).toEqual({ result: 'not_replayable' });

    const {
      jobs: [again],
    } = await store().startAttempts({ ids: [job.deliveryId] }, LEASE);
    expect(again).toMatchObject({ deliveryId: job.deliveryId, attempt: 1 });
  });

  it('replay answers not_found for unknown ids and not_replayable for live deliveries', async () => {
    const id = await acceptOne(store());
    const [pending] = await deliveryIds(store(), id);
    expect(await store().replay(pending as string)).toEqual({ result: 'not_replayable' });
    expect(await store().replay(uuidv7())).toEqual({ result: 'not_found' });
    expect(await store().replay('not-a-uuid')).toEqual({ result: 'not_found' });
  });

  it('reclaimExpired returns an expired lease to pending and voids its token', async () => {
    const id = await acceptOne(store(), { to: ['alice', 'bob'], priority: 'bulk', channels: ['webhook'] });
    const [a, b] = (await deliveryIds(store(), id)) as [string, string];
    const {
      jobs: [old],
    } = await store().startAttempts({ ids: [a] }, 1);
    expect(old?.deliveryId).toBe(a);
    expect((await store().startAttempts({ ids: [b] }, LEASE)).jobs).toHaveLength(1);
    await sleep(20);

    expect(await store().reclaimExpired(10)).toEqual([{ id: a, lane: 'bulk' }]);
    expect(await delivery(store(), id, a)).toMatchObject({ status: 'pending', attempts: 1 });
    expect(await delivery(store(), id, b)).toMatchObject({ status: 'processing' });
    expect((await view(store(), id)).timeline.at(-1)).toMatchObject({ event: 'lease_expired' });

    const {
      jobs: [fresh],
    } = await store().startAttempts({ ids: [a] }, LEASE);
    expect(fresh).toMatchObject({ deliveryId: a, attempt: 2 });
    expect(fresh?.leaseToken).not.toBe(old?.leaseToken);
    expect(await store().finishAttempts([sent(old as DeliveryJob)])).toEqual([false]);
    expect(await delivery(store(), id, a)).toMatchObject({ status: 'processing' });
    expect(await store().finishAttempts([sent(fresh as DeliveryJob)])).toEqual([true]);
    expect(await store().reclaimExpired(10)).toEqual([]);
  });

  it('reclaimExpired with unexpired returns every lease, and a late outcome of the old holder is ignored', async () => {
    const { id, jobs } = await acceptAndStart(store(), { to: ['alice', 'bob'] });
    expect(await store().reclaimExpired(10)).toEqual([]);

    const back = await store().reclaimExpired(10, { unexpired: true });
    expect(back.map((b) => b.id).sort()).toEqual(jobs.map((j) => j.deliveryId).sort());
    for (const j of jobs) expect(await delivery(store(), id, j.deliveryId)).toMatchObject({ status: 'pending' });
    expect(await store().finishAttempts(jobs.map(sent))).toEqual([false, false]);
    expect(await store().reclaimExpired(10, { unexpired: true })).toEqual([]);
  });

  it('vacuum reclaims dead rows on the embedded store, and leaves it to autovacuum on PostgreSQL', async () => {
    const { jobs } = await acceptAndStart(store(), { to: ['alice', 'bob'] });
    await store().finishAttempts(jobs.map(sent));
    const vacuumed = await store().vacuum();
    if (kind === 'postgres') {
      expect(vacuumed).toEqual([]);
      return;
    }
    expect(vacuumed).toEqual(expect.arrayContaining(['deliveries', 'inbox', 'notifications', 'timeline']));
    // A partitioned table (migration 0017) is vacuumed through its partitions, each of which is checked.
    const rows = await store().sql.query<{ relname: string; parent: boolean; vacuumed: boolean; analyzed: boolean }>(
      `SELECT s.relname, c.relkind = 'p' AS parent, s.last_vacuum IS NOT NULL AS vacuumed,
              s.last_analyze IS NOT NULL AS analyzed
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
       WHERE s.relname = ANY($1::text[])
          OR s.relid IN (SELECT i.inhrelid FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                         WHERE p.relname = ANY($1::text[]))
       ORDER BY s.relname`,
      [vacuumed],
    );
    expect(rows.filter((r) => vacuumed.includes(r.relname))).toHaveLength(vacuumed.length);
    expect(rows.length).toBeGreaterThan(vacuumed.length);
    for (const r of rows) expect(r).toMatchObject(r.parent ? { analyzed: true } : { vacuumed: true, analyzed: true });
  });

  it('findOverdue lists pending deliveries due before the given time', async () => {
    const due = await acceptOne(store(), { to: ['a', 'b', 'c'], priority: 'high' });
    await acceptOne(store(), { sendAt: new Date(Date.now() + HOUR) });
    await acceptAndStart(store()); // processing: not overdue
    const dueIds = await deliveryIds(store(), due);

    const found = await store().findOverdue(new Date(Date.now() + 1000), 10);
    expect(found.map((f) => f.id).sort()).toEqual([...dueIds].sort());
    for (const f of found) expect(f).toMatchObject({ lane: 'high', runAt: expect.any(Date) });
    expect(await store().findOverdue(new Date(Date.now() + 1000), 2)).toHaveLength(2);
  });

  // ─── cancel ────────────────────────────────────────────────────────────────────────────────

  it('cancel cancels every delivery while all are pending, and says so again later', async () => {
    const id = await acceptOne(store(), { to: ['alice', 'bob'], channels: ['in_app', 'email'] });
    expect(await store().cancel(id)).toBe('cancelled');

    const v = await view(store(), id);
    expect(v.cancelledAt).toBeInstanceOf(Date);
    expect(v.stateCounts).toEqual({ cancelled: 4 });
    expect(v.timeline.at(-1)).toMatchObject({ event: 'cancelled' });
    expect(await store().cancel(id)).toBe('cancelled');
    expect(await store().startAttempts({ ids: await deliveryIds(store(), id) }, LEASE)).toEqual(NOTHING);
    expect(await store().startAttempts({ lane: 'normal', max: 10 }, LEASE)).toEqual(NOTHING);
    expect(await countRows(store(), 'inbox')).toBe(0);
  });

  it('cancel refuses once a delivery was started', async () => {
    const id = await acceptOne(store(), { to: ['alice', 'bob'], channels: ['webhook'] });
    const [a] = (await deliveryIds(store(), id)) as [string, string];
    const {
      jobs: [job],
    } = await store().startAttempts({ ids: [a] }, LEASE);
    expect(job?.deliveryId).toBe(a);
    expect(await store().cancel(id)).toBe('not_cancellable');

    // Back to pending after a failed attempt: it was still started, so still not cancellable.
    await store().finishAttempts([
      { deliveryId: a, leaseToken: job?.leaseToken as string, result: 'retry', error: 'x', nextAttemptAt: new Date() },
    ]);
    expect(await store().cancel(id)).toBe('not_cancellable');
    const v = await view(store(), id);
    expect(v.cancelledAt).toBeNull();
    expect(v.stateCounts).toEqual({ pending: 2 });
  });

  it('cancel refuses once an in-app delivery was delivered', async () => {
    const id = await acceptOne(store(), { to: ['alice', 'bob'] });
    const [a] = (await deliveryIds(store(), id)) as [string, string];
    const { inbox } = await store().startAttempts({ ids: [a] }, LEASE);
    expect(inbox.map((e) => e.deliveryId)).toEqual([a]);
    expect(await store().cancel(id)).toBe('not_cancellable');
    const v = await view(store(), id);
    expect(v.cancelledAt).toBeNull();
    expect(v.stateCounts).toEqual({ sent: 1, pending: 1 });
    expect((await store().listInbox('alice', { limit: 10 })).items).toHaveLength(1);
  });

  it('cancel answers not_found for unknown ids', async () => {
    expect(await store().cancel(uuidv7())).toBe('not_found');
    expect(await store().cancel('not-a-uuid')).toBe('not_found');
  });

  it('a cancel racing a worker lets exactly one of them win', async () => {
    let delivered = 0;
    for (let round = 0; round < 5; round++) {
      const id = await acceptOne(store(), { to: ['alice', 'bob', 'carol'], channels: ['in_app', 'email'] });
      const ids = await deliveryIds(store(), id);
      const [cancelled, work] = await Promise.all([store().cancel(id), store().startAttempts({ ids }, LEASE)]);
      const v = await view(store(), id);
      if (cancelled === 'cancelled') {
        expect(work).toEqual(NOTHING);
        expect(v.stateCounts).toEqual({ cancelled: 6 });
      } else {
        expect(cancelled).toBe('not_cancellable');
        // The emails are leased; the in-app deliveries are delivered in the same transaction.
        expect(work.jobs.map((j) => j.channel)).toEqual(['email', 'email', 'email']);
        expect(work.inbox.map((e) => e.userId).sort()).toEqual(['alice', 'bob', 'carol']);
        expect(takenIds(work)).toEqual([...ids].sort());
        expect(v.stateCounts).toEqual({ processing: 3, sent: 3 });
        delivered++;
      }
      // The inbox holds exactly the in-app deliveries of the rounds the worker won.
      expect(await countRows(store(), 'inbox')).toBe(3 * delivered);
    }
  });

  // ─── in-app deliveries and the inbox ───────────────────────────────────────────────────────

  it('startAttempts delivers in-app deliveries at once: sent, in the inbox, with seqs 1, 2, 3… per user', async () => {
    const one = await acceptOne(store(), { to: ['alice', 'bob'], title: 'one', priority: 'high' });
    const two = await acceptOne(store(), { to: ['alice'], title: 'two' });
    const three = await acceptOne(store(), { to: ['alice', 'bob'], title: 'three' });
    const oneIds = (await deliveryIds(store(), one)) as [string, string];

    const first = await store().startAttempts({ ids: oneIds }, LEASE);
    expect(first.jobs).toEqual([]);
    expect(seqsOf(first.inbox)).toEqual([
      ['alice', 1],
      ['bob', 1],
    ]);
    const aliceOne = first.inbox.find((e) => e.userId === 'alice');
    expect(aliceOne).toEqual({
      deliveryId: oneIds[0],
      userId: 'alice',
      lane: 'high',
      attempt: 1,
      item: {
        id: one,
        seq: 1,
        category: 'order.shipped',
        priority: 'high',
        title: 'one',
        body: 'It arrives tomorrow.',
        data: { orderId: 42, lines: [{ sku: 'A-1', qty: 2 }], gift: false, note: null },
        createdAt: expect.any(Date),
        readAt: null,
      },
    });

    // Completed, not leased: sent, with its attempt and seq on the timeline.
    const v = await view(store(), one);
    expect(v.stateCounts).toEqual({ sent: 2 });
    expect(v.started).toBe(2);
    expect(await delivery(store(), one, oneIds[0])).toMatchObject({
      status: 'sent',
      attempts: 1,
      lastError: null,
      nextAttemptAt: null,
    });
    const sentEvents = v.timeline.filter((t) => t.event === 'sent');
    expect(sentEvents.map((t) => t.detail).sort((x: any, y: any) => x.userId.localeCompare(y.userId))).toEqual([
      { userId: 'alice', channel: 'in_app', attempt: 1, seq: 1 },
      { userId: 'bob', channel: 'in_app', attempt: 1, seq: 1 },
    ]);
    expect(await store().reclaimExpired(10)).toEqual([]);

    // The next call continues each user's seqs; within it, alice's deliveries get them in delivery order.
    const rest = await store().startAttempts(
      { ids: [...(await deliveryIds(store(), three)), ...(await deliveryIds(store(), two))] },
      LEASE,
    );
    expect(rest.jobs).toEqual([]);
    expect(
      rest.inbox
        .map((e) => [e.userId, e.item.seq, e.item.title])
        .sort((x, y) => String(x[0]).localeCompare(String(y[0])) || Number(x[1]) - Number(y[1])),
    ).toEqual([
      ['alice', 2, 'two'],
      ['alice', 3, 'three'],
      ['bob', 2, 'three'],
    ]);
    expect((await view(store(), two)).stateCounts).toEqual({ sent: 1 });
    expect((await view(store(), three)).stateCounts).toEqual({ sent: 2 });

    // The inbox has them.
    const alice = await store().listInbox('alice', { limit: 10 });
    expect(alice.items.map((i) => [i.seq, i.id, i.title, i.readAt])).toEqual([
      [3, three, 'three', null],
      [2, two, 'two', null],
      [1, one, 'one', null],
    ]);
    expect(alice.unreadCount).toBe(3);
    expect((await store().listInboxAfter('bob', 0, 10)).map((i) => [i.seq, i.id])).toEqual([
      [1, one],
      [2, three],
    ]);
    expect((await store().listInboxAfter('alice', 1, 10)).map((i) => i.seq)).toEqual([2, 3]);
    expect(await store().inboxState('alice')).toEqual({ lastSeq: 3, unreadCount: 3 });
  });

  it('startAttempts delivers an in-app delivery once: taking it again returns nothing', async () => {
    const one = await acceptAndDeliver(store(), { to: ['alice', 'bob'] });
    expect(await store().startAttempts({ ids: one.ids }, LEASE)).toEqual(NOTHING);
    const two = await acceptOne(store(), { to: ['alice'] });
    const [twoId] = await deliveryIds(store(), two);

    const again = await store().startAttempts({ ids: [...one.ids, twoId as string] }, LEASE);
    expect(again.jobs).toEqual([]);
    expect(again.inbox.map((e) => [e.deliveryId, e.userId, e.item.seq])).toEqual([[twoId, 'alice', 2]]);
    expect(await countRows(store(), 'inbox')).toBe(3);
    expect((await view(store(), one.id)).timeline.filter((t) => t.event === 'sent')).toHaveLength(2);
    expect(await delivery(store(), one.id, one.ids[0] as string)).toMatchObject({ status: 'sent', attempts: 1 });
  });

  it("startAttempts assigns a user's seqs in delivery order within one call", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push(...(await deliveryIds(store(), await acceptOne(store(), { to: ['alice', 'bob'], title: `n${i}` }))));
    }
    // Handed over in reverse (and shuffled by user): the order of the ids given does not matter.
    const { inbox } = await store().startAttempts({ ids: [...ids].reverse() }, LEASE);
    expect(inbox).toHaveLength(12);
    for (const user of ['alice', 'bob']) {
      const mine = inbox.filter((e) => e.userId === user).sort((x, y) => x.item.seq - y.item.seq);
      expect(mine.map((e) => e.item.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(mine.map((e) => e.item.title)).toEqual(['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
      expect(mine.map((e) => e.deliveryId)).toEqual(mine.map((e) => e.deliveryId).sort());
    }
  });

  it('startAttempts from a lane takes at most `max` due deliveries of that lane, oldest due first', async () => {
    const now = Date.now();
    const oldest = await acceptOne(store(), {
      to: ['alice'],
      priority: 'high',
      channels: ['webhook'],
      sendAt: new Date(now - 3000),
    });
    const middle = await acceptOne(store(), {
      to: ['alice'],
      priority: 'high',
      channels: ['in_app', 'webhook'],
      sendAt: new Date(now - 2000),
    });
    const newest = await acceptOne(store(), {
      to: ['bob'],
      priority: 'high',
      channels: ['in_app'],
      sendAt: new Date(now - 1000),
    });
    const otherLane = await acceptOne(store(), { to: ['carol'], priority: 'normal', channels: ['in_app', 'webhook'] });
    const future = await acceptOne(store(), {
      to: ['dave'],
      priority: 'high',
      channels: ['in_app', 'webhook'],
      sendAt: new Date(now + HOUR),
    });
    const [oldestId] = (await deliveryIds(store(), oldest)) as [string];
    const [middleInApp, middleWebhook] = (await deliveryIds(store(), middle)) as [string, string];
    const [newestId] = (await deliveryIds(store(), newest)) as [string];

    // The three oldest: one call leases the webhooks and delivers the in-app one.
    const first = await store().startAttempts({ lane: 'high', max: 3 }, LEASE);
    expect(first.jobs.map((j) => j.deliveryId).sort()).toEqual([oldestId, middleWebhook].sort());
    for (const j of first.jobs) expect(j).toMatchObject({ lane: 'high', channel: 'webhook', attempt: 1 });
    expect(first.inbox).toEqual([
      expect.objectContaining({
        deliveryId: middleInApp,
        userId: 'alice',
        lane: 'high',
        item: expect.objectContaining({ id: middle, seq: 1 }),
      }),
    ]);
    expect(await delivery(store(), oldest, oldestId)).toMatchObject({ status: 'processing' });
    expect((await view(store(), middle)).stateCounts).toEqual({ processing: 1, sent: 1 });
    expect((await view(store(), newest)).stateCounts).toEqual({ pending: 1 });

    // What is left that is due; never the scheduled ones, nor another lane's.
    const second = await store().startAttempts({ lane: 'high', max: 10 }, LEASE);
    expect(second.jobs).toEqual([]);
    expect(second.inbox.map((e) => [e.deliveryId, e.userId, e.item.seq])).toEqual([[newestId, 'bob', 1]]);
    expect(await store().startAttempts({ lane: 'high', max: 10 }, LEASE)).toEqual(NOTHING);
    expect((await view(store(), future)).stateCounts).toEqual({ pending: 2 });
    expect((await view(store(), otherLane)).stateCounts).toEqual({ pending: 2 });

    expect(await store().startAttempts({ lane: 'normal', max: 0 }, LEASE)).toEqual(NOTHING);
    const one = await store().startAttempts({ lane: 'normal', max: 1 }, LEASE);
    expect(takenIds(one)).toHaveLength(1);
    const other = await store().startAttempts({ lane: 'normal', max: 10 }, LEASE);
    expect([...takenIds(one), ...takenIds(other)].sort()).toEqual([...(await deliveryIds(store(), otherLane))].sort());
    expect((await view(store(), otherLane)).stateCounts).toEqual({ processing: 1, sent: 1 });
  });

  it('listInbox lists newest first and pages with before', async () => {
    for (let i = 1; i <= 5; i++) await acceptAndDeliver(store(), { to: ['alice'], title: `n${i}` });
    const p1 = await store().listInbox('alice', { limit: 2 });
    expect(p1.items.map((i) => [i.seq, i.title])).toEqual([
      [5, 'n5'],
      [4, 'n4'],
    ]);
    expect(p1).toMatchObject({ unreadCount: 5, nextBefore: 4 });
    const p2 = await store().listInbox('alice', { limit: 2, before: p1.nextBefore });
    expect(p2.items.map((i) => i.seq)).toEqual([3, 2]);
    expect(p2.nextBefore).toBe(2);
    const p3 = await store().listInbox('alice', { limit: 2, before: p2.nextBefore });
    expect(p3.items.map((i) => i.seq)).toEqual([1]);
    expect(p3).toMatchObject({ unreadCount: 5, nextBefore: null });
    expect(await store().listInbox('bob', { limit: 10 })).toEqual({ items: [], unreadCount: 0, nextBefore: null });
  });

  it('markRead by seqs, up to a seq, or all answers the new unread count', async () => {
    for (let i = 1; i <= 5; i++) await acceptAndDeliver(store(), { to: ['alice'] });
    await acceptAndDeliver(store(), { to: ['bob'] });

    expect(await store().markRead('alice', { seqs: [1, 3] })).toBe(3);
    const unread = await store().listInbox('alice', { limit: 10, unread: true });
    expect(unread.items.map((i) => i.seq)).toEqual([5, 4, 2]);
    expect(unread.unreadCount).toBe(3);
    const all = await store().listInbox('alice', { limit: 10 });
    expect(all.items.filter((i) => i.readAt !== null).map((i) => i.seq)).toEqual([3, 1]);

    expect(await store().markRead('alice', { upToSeq: 4 })).toBe(1);
    expect((await store().listInbox('alice', { limit: 10, unread: true })).items.map((i) => i.seq)).toEqual([5]);
    expect(await store().markRead('alice', { all: true })).toBe(0);
    expect(await store().markRead('alice', { all: true })).toBe(0);
    expect((await store().listInbox('bob', { limit: 10 })).unreadCount).toBe(1);
  });

  it('unread counts stay exact under overlapping concurrent reads and deliveries', async () => {
    for (let i = 1; i <= 20; i++) await acceptAndDeliver(store(), { to: ['erin'] });
    const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    // Reads that overlap each other, and deliveries arriving meanwhile: each entry is counted read
    // once, whichever read marks it, and each new entry is counted unread once.
    await Promise.all([
      store().markRead('erin', { upToSeq: 10 }),
      store().markRead('erin', { seqs: seqs(5, 15) }),
      store().markRead('erin', { seqs: seqs(8, 18) }),
      store().markRead('erin', { upToSeq: 12 }),
      acceptAndDeliver(store(), { to: ['erin'] }),
      acceptAndDeliver(store(), { to: ['erin'] }),
    ]);
    const unreadSeqs = (await store().listInbox('erin', { limit: 100, unread: true })).items.map((i) => i.seq);
    expect(unreadSeqs).toEqual([22, 21, 20, 19]);
    expect(await store().inboxState('erin')).toEqual({ lastSeq: 22, unreadCount: 4 });
    await Promise.all([store().markRead('erin', { all: true }), store().markRead('erin', { all: true })]);
    expect(await store().inboxState('erin')).toEqual({ lastSeq: 22, unreadCount: 0 });
  });

  it('unread listings and counts match a model through random deliveries and reads', async () => {
    // Seeded, so that a failure can be replayed: deliveries in batches, reads by seqs, up to a seq
    // and all, in random order; after each step the unread entries and count are exactly the model's.
    let seed = 20261202;
    const random = (n: number) => {
      // mulberry32: 32-bit integer arithmetic, so every bit of the state is kept.
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const unread = new Set<number>();
    let last = 0;
    for (let step = 0; step < 60; step++) {
      const op = random(5);
      if (op <= 1 || last === 0) {
        const k = 1 + random(4);
        await store().accept(
          Array.from({ length: k }, () => request({ to: ['max'] })),
          { inAppUpTo: 1 },
        );
        for (let i = 1; i <= k; i++) unread.add(last + i);
        last += k;
      } else if (op === 2) {
        const seqs = Array.from({ length: 1 + random(3) }, () => 1 + random(last + 2));
        for (const q of seqs) unread.delete(q);
        expect(await store().markRead('max', { seqs })).toBe(unread.size);
      } else if (op === 3) {
        const upToSeq = random(last + 3);
        for (const q of [...unread]) if (q <= upToSeq) unread.delete(q);
        expect(await store().markRead('max', { upToSeq })).toBe(unread.size);
      } else if (random(3) === 0) {
        unread.clear();
        expect(await store().markRead('max', { all: true })).toBe(0);
      }
      const page = await store().listInbox('max', { limit: 1000, unread: true });
      expect(
        page.items.map((i) => i.seq),
        `step ${step}`,
      ).toEqual([...unread].sort((x, y) => y - x));
      expect(page.unreadCount).toBe(unread.size);
      expect(await store().inboxState('max')).toEqual({ lastSeq: last, unreadCount: unread.size });
    }
  });

  it('unread entries are found without visiting the entries already read', async () => {
    const fiveHundred = async (user: string) => {
      for (let i = 0; i < 5; i++) {
        await store().accept(
          Array.from({ length: 100 }, () => request({ to: [user] })),
          { inAppUpTo: 1 },
        );
      }
    };
    const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const visitedByUnreadPage = async (user: string) => {
      const [plan] = await store().sql.query<{ 'QUERY PLAN': unknown }>(
        `EXPLAIN (ANALYZE, FORMAT JSON) SELECT i.seq FROM inbox i WHERE i.user_id = $1 ${UNREAD_ONLY}
         ORDER BY i.seq DESC LIMIT 51`,
        [user],
      );
      return inboxRowsVisited(plan?.['QUERY PLAN']);
    };
    // 500 entries, all read, then two more of which one is read.
    await fiveHundred('ned');
    expect(await store().markRead('ned', { all: true })).toBe(0);
    await store().accept([request({ to: ['ned'] }), request({ to: ['ned'] })], { inAppUpTo: 1 });
    expect(await store().markRead('ned', { seqs: [501] })).toBe(1);
    expect(await visitedByUnreadPage('ned')).toBeLessThanOrEqual(2);
    expect((await store().listInbox('ned', { limit: 50, unread: true })).items.map((i) => i.seq)).toEqual([502]);

    // 500 entries read one page at a time, oldest first, the newest left unread.
    await fiveHundred('ola');
    for (let from = 1; from < 500; from += 100)
      await store().markRead('ola', { seqs: seqs(from, Math.min(from + 99, 499)) });
    expect(await visitedByUnreadPage('ola')).toBeLessThanOrEqual(2);
    expect((await store().listInbox('ola', { limit: 50, unread: true })).items.map((i) => i.seq)).toEqual([500]);
  });

  it('markDelivered moves sent deliveries to delivered once, and leaves read ones read', async () => {
    const one = await acceptAndDeliver(store(), { to: ['ivy'] });
    const two = await acceptAndDeliver(store(), { to: ['ivy'] });
    await store().markRead('ivy', { seqs: [2] });
    // Acked twice (two tabs), with a seq that does not exist and another user's seq 1.
    await store().markDelivered([
      { userId: 'ivy', seq: 1 },
      { userId: 'ivy', seq: 2 },
      { userId: 'ivy', seq: 99 },
    ]);
    await store().markDelivered([{ userId: 'ivy', seq: 1 }]);
    const v1 = await view(store(), one.id);
    expect(v1.stateCounts).toEqual({ delivered: 1 });
    expect(v1.timeline.filter((e) => e.event === 'delivered')).toHaveLength(1);
    expect((await view(store(), two.id)).stateCounts).toEqual({ read: 1 });
    // Acks do not read: the unread count is unchanged.
    expect(await store().inboxState('ivy')).toEqual({ lastSeq: 2, unreadCount: 1 });
  });

  it('markRead moves the sent deliveries it reads to read', async () => {
    const one = await acceptAndDeliver(store(), { to: ['alice'] });
    const two = await acceptAndDeliver(store(), { to: ['alice'] });
    expect((await view(store(), one.id)).stateCounts).toEqual({ sent: 1 });

    await store().markRead('alice', { seqs: [1] });
    const v1 = await view(store(), one.id);
    expect(v1.stateCounts).toEqual({ read: 1 });
    expect(v1.timeline.at(-1)).toMatchObject({ event: 'read', detail: { userId: 'alice', channel: 'in_app' } });
    expect((await view(store(), two.id)).stateCounts).toEqual({ sent: 1 });
  });

  it('concurrent takes for one user get seqs 1..N with no gap and no duplicate, consecutive per take', async () => {
    const batches: string[][] = [];
    for (let i = 0; i < 10; i++) {
      const ids: string[] = [];
      for (let k = 0; k < 3; k++) ids.push(...(await deliveryIds(store(), await acceptOne(store(), { to: ['dana'] }))));
      batches.push(ids);
    }
    const takes = await Promise.all(batches.map((ids) => store().startAttempts({ ids }, LEASE)));
    for (const [i, t] of takes.entries()) {
      expect(t.jobs).toEqual([]);
      expect(t.inbox.map((e) => e.deliveryId).sort()).toEqual([...(batches[i] as string[])].sort());
      // One take's entries hold consecutive seqs, in delivery order.
      const mine = [...t.inbox].sort((x, y) => x.item.seq - y.item.seq);
      const low = mine[0]?.item.seq as number;
      expect(mine.map((e) => e.item.seq)).toEqual([low, low + 1, low + 2]);
      expect(mine.map((e) => e.deliveryId)).toEqual(mine.map((e) => e.deliveryId).sort());
    }
    const entries = takes.flatMap((t) => t.inbox);
    expect(entries.map((e) => e.item.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const page = await store().listInbox('dana', { limit: 100 });
    expect(page.items.map((i) => i.seq)).toEqual(Array.from({ length: 30 }, (_, i) => 30 - i));
  });

  it('concurrent takes of the same in-app deliveries deliver each exactly once', async () => {
    // Two workers handed the same ids (the bus is at-least-once): only one of them may deliver each.
    for (let round = 0; round < 10; round++) {
      const user = `erin-${round}`;
      const ids: string[] = [];
      for (let k = 0; k < 3; k++) {
        ids.push(...(await deliveryIds(store(), await acceptOne(store(), { to: [user, `frank-${round}`] }))));
      }
      const takes = await Promise.all([1, 2, 3].map(() => store().startAttempts({ ids }, LEASE)));
      const entries = takes.flatMap((t) => t.inbox);
      expect(takes.flatMap((t) => t.jobs)).toEqual([]);
      expect(entries.map((e) => e.deliveryId).sort()).toEqual([...ids].sort());
      expect(seqsOf(entries)).toEqual([
        [`erin-${round}`, 1],
        [`erin-${round}`, 2],
        [`erin-${round}`, 3],
        [`frank-${round}`, 1],
        [`frank-${round}`, 2],
        [`frank-${round}`, 3],
      ]);
      expect((await store().listInboxAfter(user, 0, 10)).map((i) => i.seq)).toEqual([1, 2, 3]);
      const next = await acceptAndDeliver(store(), { to: [user] });
      expect(next.inbox[0]?.item.seq).toBe(4);
    }
    expect(await countRows(store(), 'inbox')).toBe(70);
  });

  // ─── users ─────────────────────────────────────────────────────────────────────────────────

  it('upsertUser creates then updates a profile', async () => {
    const alice: UserProfile = {
      id: 'alice',
      email: 'alice@example.com',
      phone: null,
      timezone: 'UTC',
      locale: 'en',
      webhookUrl: 'https://example.com/hook',
      chatWebhookUrl: null,
    };
    expect(await store().upsertUser(alice)).toEqual(alice);
    expect(await store().getUser('alice')).toEqual(alice);

    const moved = {
      ...alice,
      email: null,
      phone: '+15550100',
      timezone: 'Asia/Tokyo',
      webhookUrl: null,
      chatWebhookUrl: 'https://chat.example.com/alice',
    };
    expect(await store().upsertUser(moved)).toEqual(moved);
    expect(await store().getUser('alice')).toEqual(moved);
    expect(await store().getUser('nobody')).toBeNull();
  });

  // ─── idempotency key retention ─────────────────────────────────────────────────────────────

  it('purgeIdempotencyKeys forgets only keys older than the cut-off', async () => {
    const old = request({ idempotencyKey: 'k-old', requestHash: 'h-1', createdAt: new Date(Date.now() - 2 * HOUR) });
    const recent = request({ idempotencyKey: 'k-new', requestHash: 'h-1' });
    await store().accept([old, recent]);

    expect(await store().purgeIdempotencyKeys(new Date(Date.now() - HOUR))).toBe(1);
    expect(await store().purgeIdempotencyKeys(new Date(Date.now() - HOUR))).toBe(0);
    expect(await countRows(store(), 'idempotency_keys')).toBe(1);

    // The purged key is free again (another body is no conflict); the kept one still guards.
    const [reuse] = await store().accept([request({ idempotencyKey: 'k-old', requestHash: 'h-2' })]);
    expect(reuse?.kind).toBe('accepted');
    const [kept] = await store().accept([request({ idempotencyKey: 'k-new', requestHash: 'h-2' })]);
    expect(kept).toEqual({ kind: 'conflict', existingId: recent.id });
  });
});

/** Rows an EXPLAIN ANALYZE plan read from `inbox`: those it returned plus those its filter removed. */
function inboxRowsVisited(plan: unknown): number {
  let total = 0;
  const walk = (node: Record<string, unknown>) => {
    if (node['Relation Name'] === 'inbox') {
      total += Number(node['Actual Rows'] ?? 0) + Number(node['Rows Removed by Filter'] ?? 0);
    }
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  const root = (typeof plan === 'string' ? JSON.parse(plan) : plan) as { Plan: Record<string, unknown> }[];
  for (const p of root) walk(p.Plan);
  return total;
}
