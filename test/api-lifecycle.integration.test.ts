/**
 * A notification's life as a producer sees it through the API: accepted, delivered to each
 * recipient, `done`, with deliveries and a timeline; scheduled with `sendAt` and delivered only
 * then; cancelled before anything was sent (and never delivered), refused once something was.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { expectError } from './support/http.ts';

const DELIVERY_STATUSES = ['pending', 'sent', 'delivered', 'read', 'failed', 'dead', 'skipped'];
const NOTIFICATION_STATUSES = [
  'accepted',
  'scheduled',
  'processing',
  'done',
  'partially_failed',
  'failed',
  'cancelled',
];
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UNKNOWN_ID = '01936f8e-0000-7000-8000-000000000000';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['pglite', 'postgres'] as const)('notification lifecycle (%s)', (store) => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const get = async (id: string) => {
    const res = await t.api('GET', `/v1/notifications/${id}`);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    return res.json;
  };
  const inboxIds = async (userId: string): Promise<string[]> =>
    (await t.api('GET', `/v1/users/${userId}/inbox`)).json.items.map((i: { id: string }) => i.id);

  it('to two users: 202 accepted, then done, with one sent delivery each and a timeline', async () => {
    const post = await t.api('POST', '/v1/notifications', {
      to: ['ann', 'ben'],
      category: 'comment.reply',
      title: 'New reply',
      body: 'Bob replied',
      data: { postId: 42 },
    });
    expect(post.status).toBe(202);
    expect(Object.keys(post.json).sort()).toEqual(['id', 'recipients', 'status']);
    expect(post.json).toMatchObject({ status: 'accepted', recipients: 2 });
    const { id } = post.json;

    // Stored before the answer: readable at once, in a status of the contract.
    expect(NOTIFICATION_STATUSES).toContain((await get(id)).status);

    const n = await eventually(async () => {
      const v = await get(id);
      return v.status === 'done' ? v : null;
    }, 'status done');
    expect(n).toMatchObject({ id, category: 'comment.reply', priority: 'normal' });
    expect(n.createdAt).toMatch(ISO);

    expect(n.deliveries).toHaveLength(2);
    expect(n.deliveries.map((d: { userId: string }) => d.userId).sort()).toEqual(['ann', 'ben']);
    for (const d of n.deliveries) {
      expect(d).toMatchObject({ channel: 'in_app', status: 'sent', attempts: 1, lastError: null });
      expect(d.updatedAt).toMatch(ISO);
      expect(DELIVERY_STATUSES).toContain(d.status);
      expect(Date.parse(d.updatedAt)).toBeGreaterThanOrEqual(Date.parse(n.createdAt));
    }

    const events = n.timeline.map((e: { event: string }) => e.event);
    expect(events[0]).toBe('accepted');
    expect(events.filter((e: string) => e === 'sent')).toHaveLength(2);
    for (const e of n.timeline) {
      expect(Object.keys(e).sort()).toEqual(['at', 'detail', 'event']);
      expect(e.at).toMatch(ISO);
    }
    const at = n.timeline.map((e: { at: string }) => Date.parse(e.at));
    expect([...at].sort((a, b) => a - b)).toEqual(at);

    expect(await inboxIds('ann')).toContain(id);
    expect(await inboxIds('ben')).toContain(id);
  });

  it('sendAt in the past: answered accepted and delivered at once', async () => {
    const post = await t.api('POST', '/v1/notifications', {
      to: ['cid'],
      category: 'digest.daily',
      sendAt: new Date(Date.now() - 3_600_000).toISOString(),
    });
    expect(post.status).toBe(202);
    expect(post.json.status).toBe('accepted');
    // The inbox entry is visible a moment before the outcome is recorded: wait for both.
    await eventually(async () => (await inboxIds('cid')).includes(post.json.id), 'delivery', 5_000);
    await eventually(async () => (await get(post.json.id)).status === 'done', 'status done', 5_000);
  });

  it('sendAt ahead: scheduled, not delivered before it, delivered after; cancelled one never', async () => {
    const sendAt = new Date(Date.now() + 2_000);
    const scheduled = await t.api('POST', '/v1/notifications', {
      to: ['dee'],
      category: 'reminder.meeting',
      title: 'In 2 s',
      sendAt: sendAt.toISOString(),
    });
    const toCancel = await t.api('POST', '/v1/notifications', {
      to: ['eve'],
      category: 'reminder.meeting',
      sendAt: sendAt.toISOString(),
    });
    for (const r of [scheduled, toCancel]) {
      expect(r.status).toBe(202);
      expect(r.json.status).toBe('scheduled');
    }

    // A loaded machine may get here after sendAt: the checks of "before" hold only if it did not.
    const early = () => Date.now() < sendAt.getTime() - 50;
    const before = await get(scheduled.json.id);
    expect(Date.parse(before.sendAt)).toBe(sendAt.getTime());
    expect(before.timeline.map((e: { event: string }) => e.event).slice(0, 2)).toEqual(['accepted', 'scheduled']);
    if (early()) {
      expect(before.status).toBe('scheduled');
      expect(before.deliveries[0]).toMatchObject({ userId: 'dee', status: 'pending', attempts: 0 });
    }
    const inboxBefore = await inboxIds('dee');
    if (early()) expect(inboxBefore).toEqual([]);

    const cancel = await t.api('POST', `/v1/notifications/${toCancel.json.id}/cancel`);
    expect(cancel.status, JSON.stringify(cancel.json)).toBe(200);
    expect(cancel.json).toEqual({ id: toCancel.json.id, status: 'cancelled' });
    expect((await get(toCancel.json.id)).status).toBe('cancelled');
    // Cancelling again changes nothing and says so.
    expect((await t.api('POST', `/v1/notifications/${toCancel.json.id}/cancel`)).status).toBe(200);

    const stillBefore = await inboxIds('dee');
    if (early()) expect(stillBefore).toEqual([]);
    await eventually(async () => (await inboxIds('dee')).includes(scheduled.json.id), 'the scheduled delivery');
    const after = await eventually(async () => {
      const v = await get(scheduled.json.id);
      return v.status === 'done' ? v : null;
    }, 'status done');
    // Never before its time, however late this test got here.
    expect(Date.parse(after.deliveries[0].updatedAt)).toBeGreaterThanOrEqual(sendAt.getTime());
    const sent = after.timeline.find((e: { event: string }) => e.event === 'sent');
    expect(Date.parse(sent.at)).toBeGreaterThanOrEqual(sendAt.getTime());

    // Well past its sendAt, the cancelled one was never delivered.
    await sleep(Math.max(0, sendAt.getTime() + 500 - Date.now()));
    expect(await inboxIds('eve')).toEqual([]);
    const cancelled = await get(toCancel.json.id);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.deliveries).toEqual([
      expect.objectContaining({ userId: 'eve', status: 'skipped', attempts: 0, lastError: null }),
    ]);
    expect(cancelled.timeline.map((e: { event: string }) => e.event)).toContain('cancelled');
    expect(cancelled.timeline.map((e: { event: string }) => e.event)).not.toContain('sent');
  });

  it('cancel after it was sent → 409 HERALD_ERR_NOT_CANCELLABLE, and it stays done', async () => {
    const post = await t.api('POST', '/v1/notifications', { to: ['fay'], category: 'order.shipped' });
    await eventually(async () => (await get(post.json.id)).status === 'done', 'done');
    expectError(await t.api('POST', `/v1/notifications/${post.json.id}/cancel`), 'HERALD_ERR_NOT_CANCELLABLE');
    expect((await get(post.json.id)).status).toBe('done');
    expect(await inboxIds('fay')).toEqual([post.json.id]);
  });

  it('unknown and malformed ids → 404 HERALD_ERR_NOT_FOUND, for GET and cancel', async () => {
    for (const id of [UNKNOWN_ID, 'not-a-uuid', '42', `${UNKNOWN_ID}0`]) {
      expectError(await t.api('GET', `/v1/notifications/${id}`), 'HERALD_ERR_NOT_FOUND');
      expectError(await t.api('POST', `/v1/notifications/${id}/cancel`), 'HERALD_ERR_NOT_FOUND');
    }
  });
});
