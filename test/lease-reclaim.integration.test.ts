/**
 * Crashed work comes back (ARCHITECTURE.md, guarantee 4), in-process: a delivery leased by a
 * worker that then "dies" (the test takes the lease itself with `startAttempts` and never records
 * an outcome) is returned to pending by the maintenance reclaim once the lease expires, delivered
 * by a live worker exactly once, and the dead worker's late outcome is ignored.
 *
 * In-app deliveries have no lease to lose: `startAttempts` completes them in its own transaction
 * (inbox entry, `sent`), so a worker dying right after taking one leaves it delivered, and the
 * reclaim never brings it back.
 *
 * Workers poll rarely here (HERALD_POLL_MS=60000) and the notification is written straight to the
 * store (no bus announcement), so nothing but the reclaim can bring the delivery to a worker.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/core/ids.ts';
import type { Channel, NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { type Receiver, startReceiver } from './support/receiver.ts';

/** Long enough that a live worker on a loaded machine keeps its lease; the reclaim runs every LEASE_MS / 4. */
const LEASE_MS = 2_000;
const RECLAIM_EVERY_MS = LEASE_MS / 4;

describe.each(['pglite', 'postgres'] as const)('lease expiry and reclaim (%s)', (kind) => {
  let t: TestHerald;
  let receiver: Receiver;
  let reclaimed = 0;

  beforeAll(async () => {
    receiver = await startReceiver(() => 200);
    t = await startTestHerald({
      store: kind,
      env: {
        HERALD_LEASE_MS: String(LEASE_MS),
        HERALD_WEBHOOK_TIMEOUT_MS: String(LEASE_MS / 2),
        HERALD_POLL_MS: '60000',
        HERALD_RETRY_BASE_MS: '100',
      },
    });
    t.herald.events.on('delivery:reclaimed', (e) => {
      reclaimed += e.count;
    });
  });

  afterAll(async () => {
    await t?.stop();
    await receiver?.close();
  });

  const store = () => t.herald.adapters.store as SqlStore;

  /** Writes a notification straight to the store (no bus announcement); returns its id and delivery ids by channel. */
  async function acceptDirectly(
    userId: string,
    channels: Channel[] = ['in_app', 'webhook'],
  ): Promise<{ id: string; ids: Map<string, string> }> {
    const n: NewNotification = {
      id: uuidv7(),
      to: [userId],
      category: 'payment.receipt',
      priority: 'critical',
      channels,
      title: 'Payment received',
      body: '€42.00',
      data: { amount: 4200 },
      sendAt: null,
      groupKey: null,
      createdAt: new Date(),
      idempotencyKey: null,
      requestHash: null,
    };
    const [out] = await store().accept([n]);
    expect(out?.kind).toBe('accepted');
    const rows = await store().sql.query<{ id: string; channel: string }>(
      'SELECT id, channel FROM deliveries WHERE notification_id = $1',
      [n.id],
    );
    return { id: n.id, ids: new Map(rows.map((r) => [r.channel, r.id])) };
  }

  async function stateOf(id: string) {
    const [r] = await store().sql.query<{ state: string; attempts: number; lease_until: Date | null }>(
      'SELECT state, attempts, lease_until FROM deliveries WHERE id = $1',
      [id],
    );
    return r;
  }

  it('a lease that is never finished expires, the delivery comes back and is delivered exactly once', async () => {
    const user = `reclaim-${kind}`;
    expect((await t.api('PUT', `/v1/users/${user}`, { webhookUrl: receiver.url })).status).toBe(200);
    const { id, ids } = await acceptDirectly(user);
    const inApp = ids.get('in_app') as string;
    const webhook = ids.get('webhook') as string;
    const reclaimedBefore = reclaimed;

    // A worker takes both, then dies before calling the webhook or recording anything. (Its lease is
    // half the configured one: long enough that no reclaim tick returns it before the checks below,
    // even on a loaded machine, and shorter than a live worker's.)
    // The in-app delivery was completed by the take itself: in the inbox and sent, with no lease.
    const held = await store().startAttempts({ ids: [inApp, webhook] }, LEASE_MS / 2);
    expect(held.jobs.map((j) => j.deliveryId)).toEqual([webhook]);
    expect(held.inbox.map((e) => e.deliveryId)).toEqual([inApp]);
    const entry = held.inbox[0];
    expect(entry?.item.seq).toBe(1);
    expect(await stateOf(webhook)).toMatchObject({ state: 'processing', attempts: 1 });
    expect(await stateOf(inApp)).toEqual({ state: 'sent', attempts: 1, lease_until: null });

    // The reclaim returns the webhook; a live worker delivers it.
    const notification = await eventually(
      async () => {
        const r = await t.api('GET', `/v1/notifications/${id}`);
        return r.json.deliveries.every((d: any) => d.status === 'sent') ? r.json : null;
      },
      'the webhook delivery to be sent after the reclaim',
      10_000,
    );
    expect(reclaimed - reclaimedBefore).toBeGreaterThanOrEqual(1);
    const story = JSON.stringify(notification.timeline.map((e: any) => [e.event, e.detail?.channel]));
    const eventsOf = (channel: string) =>
      notification.timeline.filter((e: any) => e.detail?.channel === channel).map((e: any) => e.event);
    // Webhook: attempt 1 was the dead worker's, attempt 2 the live one's: nothing else was tried.
    // In-app: its one attempt was the take, which delivered it; there was nothing to expire.
    const attempts = Object.fromEntries(notification.deliveries.map((d: any) => [d.channel, d.attempts]));
    expect(attempts, story).toEqual({ webhook: 2, in_app: 1 });
    expect(eventsOf('webhook'), story).toEqual(['lease_expired', 'sent']);
    expect(eventsOf('in_app'), story).toEqual(['sent']);

    // Several reclaim ticks later: still exactly one webhook request and one inbox entry (same seq).
    await new Promise((r) => setTimeout(r, 3 * RECLAIM_EVERY_MS));
    const got = receiver.received.filter((r) => r.id === webhook);
    expect(got).toHaveLength(1);
    expect(got[0]?.signatureValid).toBe(true);
    expect(got[0]?.json.userId).toBe(user);
    const inbox = await t.api('GET', `/v1/users/${user}/inbox`);
    expect(inbox.json.items).toHaveLength(1);
    expect(inbox.json.items[0]).toMatchObject({ seq: entry?.item.seq, id });

    // The "dead" worker comes back and tries to record outcomes: its old lease is ignored, and the
    // in-app delivery (never leased) cannot be changed by an outcome either.
    const late = await store().finishAttempts([
      ...held.jobs.map((j) => ({
        deliveryId: j.deliveryId,
        leaseToken: j.leaseToken,
        result: 'failed' as const,
        error: 'zombie',
      })),
      { deliveryId: inApp, leaseToken: randomUUID(), result: 'failed', error: 'zombie' },
    ]);
    expect(late).toEqual([false, false]);
    expect((await stateOf(webhook))?.state).toBe('sent');
    expect((await stateOf(inApp))?.state).toBe('sent');
  });

  it('an in-app delivery taken by a worker that then dies is delivered already, and never again', async () => {
    const user = `inapp-${kind}`;
    const { id, ids } = await acceptDirectly(user, ['in_app']);
    const inApp = ids.get('in_app') as string;
    const reclaimedBefore = reclaimed;

    // Taken with a 1 ms "lease" by a worker that dies at once: the take already did the whole job.
    const taken = await store().startAttempts({ ids: [inApp] }, 1);
    expect(taken.jobs).toEqual([]);
    expect(taken.inbox).toMatchObject([{ deliveryId: inApp, userId: user, item: { id, seq: 1 } }]);
    expect(await stateOf(inApp)).toEqual({ state: 'sent', attempts: 1, lease_until: null });

    // Several reclaim ticks: nothing to reclaim, nothing delivered again, nobody can take it again.
    await new Promise((r) => setTimeout(r, 3 * RECLAIM_EVERY_MS));
    expect(reclaimed - reclaimedBefore).toBe(0);
    expect(await store().startAttempts({ ids: [inApp] }, 1)).toEqual({ jobs: [], inbox: [] });
    expect(await stateOf(inApp)).toMatchObject({ state: 'sent', attempts: 1 });
    const view = (await t.api('GET', `/v1/notifications/${id}`)).json;
    expect(view.timeline.map((e: any) => e.event)).toEqual(['accepted', 'sent']);
    const inbox = await t.api('GET', `/v1/users/${user}/inbox`);
    expect(inbox.json.items.map((i: any) => [i.seq, i.id])).toEqual([[1, id]]);
  });

  it('a lease that is still valid is not reclaimed', async () => {
    const user = `held-${kind}`;
    const { ids } = await acceptDirectly(user);
    const inApp = ids.get('in_app') as string;
    const webhook = ids.get('webhook') as string;
    // Held for much longer than the test: the worker holding it is alive (just slow).
    const held = await store().startAttempts({ ids: [inApp, webhook] }, 60_000);
    expect(held.jobs.map((j) => j.deliveryId)).toEqual([webhook]);
    expect(held.inbox.map((e) => e.deliveryId)).toEqual([inApp]);
    await new Promise((r) => setTimeout(r, 3 * RECLAIM_EVERY_MS));
    expect((await stateOf(webhook))?.state).toBe('processing');
    expect((await stateOf(inApp))?.state).toBe('sent');
    expect(receiver.received.some((r) => r.id === webhook)).toBe(false);
    // Its owner finishes it: recorded.
    const done = await store().finishAttempts(
      held.jobs.map((j) => ({ deliveryId: j.deliveryId, leaseToken: j.leaseToken, result: 'sent', detail: null })),
    );
    expect(done).toEqual([true]);
    expect((await stateOf(webhook))?.state).toBe('sent');
  });
});

describe('shutdown with a long poll interval', () => {
  it("stop() does not wait out an idle lane's poll interval", async () => {
    const t = await startTestHerald({ env: { HERALD_POLL_MS: '60000' } });
    // Let every lane claim nothing and settle into its 60 s wait.
    await new Promise((r) => setTimeout(r, 300));
    const started = performance.now();
    await t.stop();
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});
