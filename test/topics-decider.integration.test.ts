/**
 * A topic's fan-out through the real decider (ADR 13), end to end on both stores: subscribers who
 * opted out get a `skipped` delivery with reason `opted_out` and its timeline event — in-app
 * included, and then no inbox entry — while the others get their entries as usual.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlStore } from '../src/store/store-sql.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

const fresh = (p: string) => `${p}-${randomUUID().slice(0, 8)}`;

describe.each(['pglite', 'postgres'] as const)('topic fan-out through the decider (%s)', (store) => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store, env: { HERALD_FANOUT_PAGE: '100' } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('opted-out subscribers are skipped with their reason, page by page; the others get their entries', async () => {
    const topic = fresh('t');
    const category = fresh('news');
    const users = Array.from({ length: 250 }, (_, i) => `${topic}-u${String(i).padStart(3, '0')}`);
    const noInApp = users[7] as string;
    const noEmail = users[180] as string;
    expect(
      (await t.api('PUT', `/v1/users/${noInApp}/preferences`, { categories: { [category]: { in_app: false } } }))
        .status,
    ).toBe(200);
    expect((await t.api('PUT', `/v1/users/${noEmail}/preferences`, { channels: { email: false } })).status).toBe(200);
    expect((await t.api('PUT', `/v1/topics/${topic}/subscribers`, { userIds: users })).json).toEqual({ added: 250 });

    const post = await t.api('POST', '/v1/notifications', {
      to: { topic },
      category,
      channels: ['in_app', 'email'],
      title: 'x',
    });
    expect(post.status).toBe(202);
    const id = post.json.id as string;
    const v = await eventually(async () => {
      const r = await t.api('GET', `/v1/notifications/${id}`);
      return r.json.timeline?.some((e: { event: string }) => e.event === 'fanout_done') ? r.json : null;
    }, 'fan-out to finish');
    expect(v.recipients).toBe(250);
    // Every recipient × channel is counted once: 250 in-app and 250 email (users without an address
    // are skipped too).
    const counted = Object.values(v.counts as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(counted).toBe(500);

    const sql = (t.herald.adapters.store as SqlStore).sql;
    const rows = await sql.query<{ user_id: string; channel: string; state: string; reason: string | null }>(
      `SELECT user_id, channel, state, reason FROM deliveries WHERE notification_id = $1 AND reason = 'opted_out'`,
      [id],
    );
    expect(rows.map((r) => `${r.user_id} ${r.channel} ${r.state} ${r.reason}`).sort()).toEqual(
      [`${noEmail} email skipped opted_out`, `${noInApp} in_app skipped opted_out`].sort(),
    );
    const events = (v.timeline as { event: string; detail: { userId?: string; channel?: string; reason?: string } }[])
      .filter((e) => e.event === 'skipped' && e.detail.reason === 'opted_out')
      .map((e) => `${e.detail.userId} ${e.detail.channel} ${e.detail.reason}`)
      .sort();
    expect(events).toEqual([`${noEmail} email opted_out`, `${noInApp} in_app opted_out`].sort());
    const inbox = await sql.query<{ user_id: string }>('SELECT user_id FROM inbox WHERE notification_id = $1', [id]);
    expect(inbox).toHaveLength(249);
    expect(inbox.some((r) => r.user_id === noInApp)).toBe(false);
  });
});
