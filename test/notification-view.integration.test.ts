/**
 * GET /v1/notifications/{id} reads one snapshot: while workers move deliveries from pending to
 * sent, every answer's counts and status agree with the deliveries it lists.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { type Receiver, startReceiver } from './support/receiver.ts';

const RECIPIENTS = 120;

describe.each(['pglite', 'postgres'] as const)('notification view consistency (%s)', (store) => {
  let t: TestHerald;
  let receiver: Receiver;

  beforeAll(async () => {
    // Single sends (webhooks) to a slow receiver through a narrow lane, so that the deliveries
    // change state over many reads.
    receiver = await startReceiver(() => ({ status: 200, delayMs: 15 }));
    t = await startTestHerald({ store, env: { HERALD_LANE_CONCURRENCY: 'normal=2' } });
  });

  afterAll(async () => {
    await t?.stop();
    await receiver?.close();
  });

  it('status, counts and deliveries agree in every answer while deliveries progress', async () => {
    const to = Array.from({ length: RECIPIENTS }, (_, i) => `view-${i}`);
    for (const user of to) {
      expect((await t.api('PUT', `/v1/users/${user}`, { webhookUrl: receiver.url })).status).toBe(200);
    }
    const posted = await t.api('POST', '/v1/notifications', { to, category: 'feed.digest', channels: ['webhook'] });
    expect(posted.status).toBe(202);
    let reads = 0;
    let midway = 0;
    await eventually(
      async () => {
        const r = await t.api('GET', `/v1/notifications/${posted.json.id}`);
        expect(r.status).toBe(200);
        reads++;
        const listed: Record<string, number> = {};
        for (const d of r.json.deliveries) listed[d.state] = (listed[d.state] ?? 0) + 1;
        expect(r.json.deliveries).toHaveLength(RECIPIENTS);
        expect(listed, `read #${reads}: counts ${JSON.stringify(r.json.counts)}`).toEqual(r.json.counts);
        const sent = listed.sent ?? 0;
        if (sent > 0 && sent < RECIPIENTS) midway++;
        expect(r.json.status).toBe(sent === RECIPIENTS ? 'done' : sent > 0 ? 'processing' : r.json.status);
        return sent === RECIPIENTS;
      },
      'every delivery to be sent',
      30_000,
    );
    // The reads really overlapped the work.
    expect(midway).toBeGreaterThan(0);
  });
});
