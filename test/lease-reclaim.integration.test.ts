/**
 * Crashed work comes back (ARCHITECTURE.md, guarantee 4), in-process: a delivery leased by a
 * worker that then "dies" (the test takes the lease itself with `startAttempts` and never records
 * an outcome) is returned to pending by the maintenance reclaim once the lease expires, delivered
 * by a live worker exactly once, and the dead worker's late outcome is ignored.
 *
 * Workers poll rarely here (HERALD_POLL_MS=60000) and the notification is written straight to the
 * store (no bus announcement), so nothing but the reclaim can bring the delivery to a worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/core/ids.ts';
import type { DeliveryJob, NewNotification } from '../src/core/types.ts';
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

  /** Writes a notification straight to the store (no bus announcement); returns its delivery ids by channel. */
  async function acceptDirectly(userId: string): Promise<Map<string, string>> {
    const n: NewNotification = {
      id: uuidv7(),
      to: [userId],
      category: 'payment.receipt',
      priority: 'critical',
      channels: ['in_app', 'webhook'],
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
    return new Map(rows.map((r) => [r.channel, r.id]));
  }

  async function stateOf(id: string) {
    const [r] = await store().sql.query<{ state: string; attempts: number; notification_id: string }>(
      'SELECT state, attempts, notification_id FROM deliveries WHERE id = $1',
      [id],
    );
    return r;
  }

  it('a lease that is never finished expires, the delivery comes back and is delivered exactly once', async () => {
    const user = `reclaim-${kind}`;
    expect((await t.api('PUT', `/v1/users/${user}`, { webhookUrl: receiver.url })).status).toBe(200);
    const ids = await acceptDirectly(user);
    const inApp = ids.get('in_app') as string;
    const webhook = ids.get('webhook') as string;
    const reclaimedBefore = reclaimed;

    // A worker takes both leases (1 ms), writes the inbox entry ("sent" in_app), then dies before
    // recording anything and before calling the webhook.
    const held: DeliveryJob[] = await store().startAttempts([inApp, webhook], 1);
    expect(held.map((j) => j.deliveryId).sort()).toEqual([inApp, webhook].sort());
    const inAppJob = held.find((j) => j.channel === 'in_app') as DeliveryJob;
    const [entry] = await store().appendInbox([inAppJob]);
    expect(entry?.item.seq).toBe(1);
    expect((await stateOf(webhook))?.state).toBe('processing');

    // The reclaim returns both; a live worker delivers them.
    const notification = await eventually(
      async () => {
        const r = await t.api('GET', `/v1/notifications/${(await stateOf(webhook))?.notification_id}`);
        return r.json.deliveries.every((d: any) => d.status === 'sent') ? r.json : null;
      },
      'both deliveries to be sent after the reclaim',
      10_000,
    );
    expect(reclaimed - reclaimedBefore).toBeGreaterThanOrEqual(2);
    const events = notification.timeline.map((e: any) => e.event);
    const story = JSON.stringify(notification.timeline.map((e: any) => [e.event, e.detail?.channel]));
    // Attempt 1 was the dead worker's, attempt 2 the live one's: nothing else was tried.
    for (const d of notification.deliveries) expect(d.attempts, story).toBe(2);
    expect(events.filter((e: string) => e === 'lease_expired')).toHaveLength(2);
    expect(events.filter((e: string) => e === 'sent')).toHaveLength(2);
    expect(events.lastIndexOf('lease_expired')).toBeLessThan(events.indexOf('sent'));

    // Several reclaim ticks later: still exactly one webhook request and one inbox entry (same seq).
    await new Promise((r) => setTimeout(r, 3 * RECLAIM_EVERY_MS));
    const got = receiver.received.filter((r) => r.id === webhook);
    expect(got).toHaveLength(1);
    expect(got[0]?.signatureValid).toBe(true);
    expect(got[0]?.json.userId).toBe(user);
    const inbox = await t.api('GET', `/v1/users/${user}/inbox`);
    expect(inbox.json.items).toHaveLength(1);
    expect(inbox.json.items[0]).toMatchObject({ seq: entry?.item.seq, id: notification.id });

    // The "dead" worker comes back and tries to record its outcome with its old lease: ignored.
    const late = await store().finishAttempts(
      held.map((j) => ({ deliveryId: j.deliveryId, leaseToken: j.leaseToken, result: 'failed', error: 'zombie' })),
    );
    expect(late).toEqual([false, false]);
    expect((await stateOf(webhook))?.state).toBe('sent');
    expect((await stateOf(inApp))?.state).toBe('sent');
  });

  it('a lease that is still valid is not reclaimed', async () => {
    const user = `held-${kind}`;
    const ids = await acceptDirectly(user);
    const inApp = ids.get('in_app') as string;
    const webhook = ids.get('webhook') as string;
    // Held for much longer than the test: the worker holding it is alive (just slow).
    const held = await store().startAttempts([inApp, webhook], 60_000);
    expect(held).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 3 * RECLAIM_EVERY_MS));
    expect((await stateOf(inApp))?.state).toBe('processing');
    expect((await stateOf(webhook))?.state).toBe('processing');
    expect(receiver.received.some((r) => r.id === webhook)).toBe(false);
    // Its owner finishes it: recorded.
    const done = await store().finishAttempts(
      held.map((j) => ({ deliveryId: j.deliveryId, leaseToken: j.leaseToken, result: 'sent', detail: null })),
    );
    expect(done).toEqual([true, true]);
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
