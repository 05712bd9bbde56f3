/**
 * The Store contract for in-app deliveries rendered by a worker (categories with a template), on
 * every adapter: accepted `via_worker` (never completed inline or by the take), leased like any
 * other delivery, then completed by completeInApp — the inbox entry with its own text and the
 * user's next seq, in the commit that records `sent`, exactly once — and read back with that text.
 */
import { expect, it } from 'vitest';
import type { DeliveryJob, NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { forEachStore } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';

const LEASE = 60_000;
const TEMPLATED = new Set(['comment.reply']);

function request(overrides: Partial<NewNotification> = {}): NewNotification {
  return newNotification({
    to: ['alice'],
    category: 'comment.reply',
    title: 'New reply',
    body: 'Bob replied',
    data: { actor: 'Bob' },
    ...overrides,
  });
}

async function inAppDeliveries(store: SqlStore, notificationId: string) {
  return store.sql.query<{ id: string; state: string; via_worker: boolean }>(
    `SELECT id, state, via_worker FROM deliveries WHERE notification_id = $1 AND channel = 'in_app' ORDER BY user_id`,
    [notificationId],
  );
}

/** Accepts a notification of a templated category (inline delivery allowed) and leases its in-app deliveries. */
async function acceptAndLease(store: SqlStore, overrides: Partial<NewNotification> = {}): Promise<DeliveryJob[]> {
  const n = request(overrides);
  const [out] = await store.accept([n], { inAppUpTo: 100, templated: TEMPLATED });
  expect(out?.kind).toBe('accepted');
  if (out?.kind !== 'accepted') throw new Error('not accepted');
  expect(out.delivered).toEqual([]);
  const rows = await inAppDeliveries(store, n.id);
  expect(rows.every((r) => r.state === 'pending' && r.via_worker)).toBe(true);
  const { jobs, inbox } = await store.startAttempts({ ids: rows.map((r) => r.id) }, LEASE);
  expect(inbox).toEqual([]);
  expect(jobs.map((j) => j.channel)).toEqual(rows.map(() => 'in_app'));
  return jobs;
}

forEachStore('in-app deliveries rendered by a worker', ({ store }) => {
  it('accept leaves in-app deliveries of a templated category to a worker; others are still completed inline', async () => {
    const plain = request({ category: 'order.shipped' });
    const templated = request();
    const [a, b] = await store().accept([plain, templated], { inAppUpTo: 100, templated: TEMPLATED });
    expect(a?.kind === 'accepted' && a.delivered.length).toBe(1);
    expect(b?.kind === 'accepted' && b.delivered.length).toBe(0);
    expect(b?.kind === 'accepted' && b.jobs.length).toBe(1);
    expect(await inAppDeliveries(store(), plain.id)).toMatchObject([{ state: 'sent', via_worker: false }]);
    expect(await inAppDeliveries(store(), templated.id)).toMatchObject([{ state: 'pending', via_worker: true }]);
    expect((await store().inboxState('alice')).lastSeq).toBe(1);
  });

  it('the take leases a via_worker in-app delivery, with the user, instead of completing it', async () => {
    await store().upsertUser({
      id: 'alice',
      email: null,
      phone: null,
      timezone: 'Europe/Berlin',
      locale: 'de',
      webhookUrl: null,
      chatWebhookUrl: null,
    });
    const [job] = await acceptAndLease(store());
    expect(job).toMatchObject({ channel: 'in_app', attempt: 1, user: { locale: 'de', timezone: 'Europe/Berlin' } });
    expect(job?.leaseToken).toEqual(expect.any(String));
    expect((await store().inboxState('alice')).lastSeq).toBe(0);
  });

  it('completeInApp appends the entry with its own text and the next seq, records sent, and inbox reads show that text', async () => {
    // An entry through the SQL path first: the rendered one continues the same sequence.
    await store().accept([request({ category: 'order.shipped' })], { inAppUpTo: 100 });
    const [job] = await acceptAndLease(store());
    if (!job) throw new Error('no job');
    const seqs = await store().completeInApp([
      {
        deliveryId: job.deliveryId,
        leaseToken: job.leaseToken,
        title: 'Bob hat geantwortet',
        body: 'Sieht gut aus',
        detail: null,
      },
    ]);
    expect(seqs).toEqual([{ seq: 2 }]);

    const page = await store().listInbox('alice', { limit: 10 });
    expect(page.unreadCount).toBe(2);
    expect(page.items.map((i) => [i.seq, i.title, i.body])).toEqual([
      [2, 'Bob hat geantwortet', 'Sieht gut aus'],
      [1, 'New reply', 'Bob replied'],
    ]);
    expect((await store().listInbox('alice', { limit: 10, unread: true })).items[0]?.title).toBe('Bob hat geantwortet');
    const after = await store().listInboxAfter('alice', 1, 10);
    expect(after.map((i) => [i.seq, i.id, i.title, i.body])).toEqual([
      [2, job.notification.id, 'Bob hat geantwortet', 'Sieht gut aus'],
    ]);

    const v = await store().getNotification(job.notification.id);
    expect(v?.deliveries[0]).toMatchObject({ status: 'sent', attempts: 1, lastError: null });
    expect(v?.timeline.find((e) => e.event === 'sent')?.detail).toMatchObject({
      userId: 'alice',
      channel: 'in_app',
      seq: 2,
    });
  });

  it("an entry completed without text of its own shows the notification's, and the detail is merged into its event", async () => {
    const [job] = await acceptAndLease(store());
    if (!job) throw new Error('no job');
    const [done] = await store().completeInApp([
      {
        deliveryId: job.deliveryId,
        leaseToken: job.leaseToken,
        title: null,
        body: null,
        detail: { templateError: 'locales.en.body: limit exceeded' },
      },
    ]);
    expect(done).toEqual({ seq: 1 });
    expect((await store().listInbox('alice', { limit: 10 })).items[0]).toMatchObject({
      title: 'New reply',
      body: 'Bob replied',
    });
    const v = await store().getNotification(job.notification.id);
    expect(v?.timeline.find((e) => e.event === 'sent')?.detail).toMatchObject({
      templateError: 'locales.en.body: limit exceeded',
      seq: 1,
    });
  });

  it('completeInApp appends a delivery once: a stale lease token or a second completion writes nothing', async () => {
    const [job] = await acceptAndLease(store());
    if (!job) throw new Error('no job');
    const text = { title: 'T', body: 'B', detail: null };
    expect(
      await store().completeInApp([{ deliveryId: job.deliveryId, leaseToken: crypto.randomUUID(), ...text }]),
    ).toEqual([null]);
    expect((await store().inboxState('alice')).lastSeq).toBe(0);
    const both = await Promise.all([
      store().completeInApp([{ deliveryId: job.deliveryId, leaseToken: job.leaseToken, ...text }]),
      store().completeInApp([{ deliveryId: job.deliveryId, leaseToken: job.leaseToken, ...text }]),
    ]);
    expect(both.flat().map((d) => d?.seq ?? null)).toEqual(expect.arrayContaining([1, null]));
    expect(both.flat()).toHaveLength(2);
    expect((await store().inboxState('alice')).lastSeq).toBe(1);
    expect((await store().listInbox('alice', { limit: 10 })).items).toHaveLength(1);
    expect(await store().completeInApp([])).toEqual([]);
  });

  it('completeInApp gives several users their own next seqs in one call, a user several in delivery order', async () => {
    const first = await acceptAndLease(store(), { to: ['alice', 'bob'] });
    const second = await acceptAndLease(store(), { to: ['alice'] });
    const all = [...first, ...second];
    const seqs = await store().completeInApp(
      all.map((j, i) => ({
        deliveryId: j.deliveryId,
        leaseToken: j.leaseToken,
        title: `t${i}`,
        body: null,
        detail: null,
      })),
    );
    const byUser = (u: string) => all.flatMap((j, i) => (j.userId === u ? [seqs[i]?.seq] : []));
    expect(byUser('alice')).toEqual([1, 2]);
    expect(byUser('bob')).toEqual([1]);
    expect((await store().inboxState('alice')).unreadCount).toBe(2);
    const alice = await store().listInbox('alice', { limit: 10 });
    expect(alice.items.map((i) => i.title)).toEqual(['t2', 't0']);
  });

  it('a failed rendered in-app delivery is recorded by finishAttempts like any other, and reaches no inbox', async () => {
    const [job] = await acceptAndLease(store());
    if (!job) throw new Error('no job');
    const [ok] = await store().finishAttempts([
      { deliveryId: job.deliveryId, leaseToken: job.leaseToken, result: 'failed', error: 'template error: x' },
    ]);
    expect(ok).toBe(true);
    expect((await store().inboxState('alice')).lastSeq).toBe(0);
    const v = await store().getNotification(job.notification.id);
    expect(v?.deliveries[0]).toMatchObject({ status: 'failed', lastError: 'template error: x' });
  });
});
