/**
 * The timeline of GET /v1/notifications/{id} is paged (1,000 events a page, `nextTimelineCursor` →
 * `?timelineCursor=`), on both stores: every event once, in the order written; the events made from
 * the notification itself (`accepted`, `scheduled`) open the first page only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlStore } from '../src/store/store-sql.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';

describe.each(['pglite', 'postgres'] as const)('the timeline in pages (%s)', (store) => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store, roles: ['api'] });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('pages 2,500 events by 1,000, each once and in order, the synthesized ones first', async () => {
    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    const sent = await t.api('POST', '/v1/notifications', { to: ['alice'], category: 'timeline.paged', sendAt });
    expect(sent.status).toBe(202);
    const id = sent.json.id as string;
    await (t.herald.adapters.store as SqlStore).sql.query(
      `INSERT INTO timeline (notification_id, event, detail)
       SELECT $1, 'attempt_failed', jsonb_build_object('n', i) FROM generate_series(1, 2500) AS i`,
      [id],
    );

    const pages: any[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `?timelineCursor=${encodeURIComponent(cursor)}` : '';
      const r = await t.api('GET', `/v1/notifications/${id}${q}`);
      expect(r.status).toBe(200);
      pages.push(r.json);
      cursor = r.json.nextTimelineCursor;
    } while (cursor !== null && pages.length < 10);

    expect(pages.map((p) => p.timeline.length)).toEqual([1_002, 1_000, 500]);
    expect(pages[0].timeline.slice(0, 2).map((e: any) => e.event)).toEqual(['accepted', 'scheduled']);
    const numbers = pages.flatMap((p) =>
      p.timeline.filter((e: any) => e.event === 'attempt_failed').map((e: any) => e.detail.n),
    );
    expect(numbers).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    // The rest of the view is the same on every page.
    for (const p of pages) {
      expect(p.deliveries).toHaveLength(1);
      expect(p.status).toBe('scheduled');
    }
  });

  it('a notification with fewer events has one page and no cursor', async () => {
    const sent = await t.api('POST', '/v1/notifications', { to: ['bob'], category: 'timeline.short' });
    const r = await t.api('GET', `/v1/notifications/${sent.json.id}`);
    expect(r.json.nextTimelineCursor).toBeNull();
    expect(r.json.timeline[0].event).toBe('accepted');
  });
});
