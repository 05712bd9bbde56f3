/**
 * No head-of-line blocking (ARCHITECTURE.md, guarantee 3): with 100,000 bulk deliveries queued
 * and being worked on, a critical notification posted after all of them is delivered while most
 * of the bulk backlog is still pending. The assertion is the ordering, not a tight time; the time
 * the critical one took is logged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryEvent } from '../src/core/events.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

const POSTS = 10;
const PER_POST = 10_000;
const BULK = POSTS * PER_POST;

describe.each(['pglite', 'postgres'] as const)('priority lanes (%s)', (store) => {
  let t: TestHerald;

  beforeAll(async () => {
    t = await startTestHerald({ store });
  });

  afterAll(async () => {
    await t?.stop();
  });

  const sql = () => (t.herald.adapters.store as SqlStore).sql;

  async function bulkCount(state: string): Promise<number> {
    const [r] = await sql().query<{ n: number }>(
      `SELECT count(*)::int AS n FROM deliveries WHERE lane = 'bulk' AND state = $1`,
      [state],
    );
    return r?.n ?? 0;
  }

  it(`delivers a critical notification while a ${BULK.toLocaleString('en')}-delivery bulk backlog is mostly pending`, async () => {
    const sentAt = new Map<string, { at: number; event: DeliveryEvent }>();
    t.herald.events.on('delivery:sent', (e) => {
      if (e.lane === 'critical') sentAt.set(e.notificationId, { at: performance.now(), event: e });
    });

    // All bulk POSTs at once, so the backlog is queued faster than the bulk lane drains it (posted one
    // after another, the worker keeps up and there is no backlog to be blocked behind).
    const ingestStart = performance.now();
    await Promise.all(
      Array.from({ length: POSTS }, async (_, p) => {
        const to = Array.from({ length: PER_POST }, (_, i) => `bulk-user-${p * PER_POST + i}`);
        const r = await t.api('POST', '/v1/notifications', {
          to,
          category: 'marketing.newsletter',
          priority: 'bulk',
          channels: ['in_app'],
          title: `Spring sale, part ${p + 1}`,
          body: 'Everything must go',
        });
        expect(r.status).toBe(202);
        expect(r.json.recipients).toBe(PER_POST);
      }),
    );
    const ingestMs = performance.now() - ingestStart;
    const [queued] = await sql().query<{ n: number }>(`SELECT count(*)::int AS n FROM deliveries WHERE lane = 'bulk'`);
    expect(queued?.n).toBe(BULK);
    const pendingBefore = await bulkCount('pending');

    const postedAt = performance.now();
    const critical = await t.api('POST', '/v1/notifications', {
      to: ['vip-user'],
      category: 'auth.otp',
      priority: 'critical',
      channels: ['in_app'],
      title: 'Your sign-in code',
      body: '493 817',
    });
    expect(critical.status).toBe(202);
    const criticalId = critical.json.id as string;

    const delivered = await eventually(() => sentAt.get(criticalId), 'the critical delivery to be sent', 30_000);
    const tookMs = delivered.at - postedAt;
    const [pendingAtDelivery, sentAtDelivery] = [await bulkCount('pending'), await bulkCount('sent')];

    // The user sees it, and the store agrees.
    const inbox = await t.api('GET', '/v1/users/vip-user/inbox');
    expect(inbox.status).toBe(200);
    expect(inbox.json.items.map((i: any) => i.id)).toEqual([criticalId]);
    const n = await t.api('GET', `/v1/notifications/${criticalId}`);
    expect(n.json.deliveries[0]).toMatchObject({ userId: 'vip-user', status: 'sent', attempts: 1 });

    console.log(
      `[priority lanes, ${store}] ingest of ${BULK} bulk deliveries: ${Math.round(ingestMs)} ms; ` +
        `bulk pending when the critical one was posted: ${pendingBefore}; ` +
        `critical delivered ${Math.round(tookMs)} ms after its POST (latency from createdAt ${delivered.event.latencyMs} ms); ` +
        `bulk then: ${pendingAtDelivery} pending, ${sentAtDelivery} sent`,
    );

    // The bulk lane was busy (so the critical one did not just find an idle system)…
    expect(sentAtDelivery).toBeGreaterThan(0);
    // …and most of its backlog was still waiting: the critical delivery did not queue behind it.
    expect(pendingAtDelivery).toBeGreaterThan(BULK / 2);
  });
});
