/**
 * The decider end to end (ADR 13, API.md Part 2), through HTTP on both stores: each decision ends on
 * the delivery (`status`, `reason`, `nextAttemptAt`) and in the timeline, `counts` sum to the
 * audience, and a preferences change applies to the next notification at once.
 *
 * Two Heralds per store: an api-only one for the decisions taken at ingest (nothing takes the
 * deliveries afterwards, so what the decider stored stays visible; its clock is the night of the
 * America/New_York DST change, 2026-11-01), and one with every role for the send-time gates.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../src/core/ports.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

const fresh = (p: string) => `${p}-${randomUUID().slice(0, 8)}`;

interface Delivery {
  userId: string;
  channel: string;
  status: string;
  state: string;
  reason: string | null;
  nextAttemptAt: string | null;
}
interface View {
  recipients: number;
  channels: string[];
  priority: string;
  counts: Record<string, number>;
  deliveries: Delivery[];
  timeline: { event: string; detail: { userId?: string; channel?: string; reason?: string; until?: string } }[];
}

async function post(t: TestHerald, body: object): Promise<string> {
  const r = await t.api('POST', '/v1/notifications', { title: 'Hello', ...body });
  expect(r.status, JSON.stringify(r.json)).toBe(202);
  return r.json.id;
}

async function view(t: TestHerald, id: string): Promise<View> {
  const r = await t.api('GET', `/v1/notifications/${id}`);
  expect(r.status).toBe(200);
  return r.json;
}

const find = (v: View, userId: string, channel: string) =>
  v.deliveries.find((d) => d.userId === userId && d.channel === channel) as Delivery;

/** Every delivery not sent has a timeline event naming its user, channel and reason; counts sum to the audience. */
function expectExplained(v: View, channels: number) {
  const total = Object.values(v.counts).reduce((a, b) => a + b, 0);
  expect(total).toBe(v.recipients * channels);
  expect(v.deliveries.length).toBe(total);
  for (const d of v.deliveries) {
    if (d.state === 'sent' || d.reason === null) continue;
    const e = v.timeline.find(
      (t) => t.detail.userId === d.userId && t.detail.channel === d.channel && t.detail.reason === d.reason,
    );
    expect(e, `${d.userId} × ${d.channel}: ${d.reason}`).toBeDefined();
  }
}

describe.each(['pglite', 'postgres'] as const)('the decider at ingest (%s)', (store) => {
  let t: TestHerald;
  let fixed = new Date('2026-11-01T03:00:00Z');
  const clock: Clock = { now: () => fixed };
  beforeAll(async () => {
    t = await startTestHerald({ store, roles: ['api'], clock });
  });
  afterAll(async () => {
    await t?.stop();
  });
  const prefs = (user: string, p: object) => t.api('PUT', `/v1/users/${user}/preferences`, p);

  it('opted_out: channel, category, category × channel, prefix — in-app included; counts sum to the audience', async () => {
    const category = `${fresh('promo')}.sale`;
    const prefix = category.split('.')[0];
    const [byChannel, byCategory, byCategoryChannel, byPrefix, none] = ['ch', 'cat', 'catch', 'pre', 'none'].map(fresh);
    await prefs(byChannel as string, { channels: { email: false } });
    await prefs(byCategory as string, { categories: { [category]: false } });
    await prefs(byCategoryChannel as string, { categories: { [category]: { in_app: false } } });
    await prefs(byPrefix as string, { categories: { [`${prefix}.*`]: { email: false } } });
    const to = [byChannel, byCategory, byCategoryChannel, byPrefix, none];
    const v = await view(t, await post(t, { to, category, channels: ['in_app', 'email'] }));
    const reason = (u: string | undefined, c: string) => find(v, u as string, c).reason;
    expect(reason(byChannel, 'email')).toBe('opted_out');
    expect(reason(byChannel, 'in_app')).toBeNull();
    expect(reason(byCategory, 'email')).toBe('opted_out');
    expect(reason(byCategory, 'in_app')).toBe('opted_out');
    expect(reason(byCategoryChannel, 'in_app')).toBe('opted_out');
    expect(reason(byCategoryChannel, 'email')).toBeNull();
    expect(reason(byPrefix, 'email')).toBe('opted_out');
    expect(reason(none, 'email')).toBeNull();
    expect(find(v, byCategory as string, 'in_app').status).toBe('skipped');
    expect(v.counts.skipped).toBe(5);
    expectExplained(v, 2);
  });

  it('a required category ignores opt-outs', async () => {
    const category = fresh('reset');
    const user = fresh('u');
    await prefs(user, { channels: { email: false }, categories: { [category]: false } });
    expect((await t.api('PUT', `/v1/categories/${category}`, { required: true })).status).toBe(200);
    const v = await view(t, await post(t, { to: [user], category, channels: ['in_app', 'email'] }));
    expect(v.deliveries.map((d) => d.reason)).toEqual([null, null]);
    expect(v.counts).toEqual({ pending: 2 });
  });

  it('quiet hours defer to their local end across the America/New_York DST change; critical passes', async () => {
    fixed = new Date('2026-11-01T03:00:00Z'); // 23:00 EDT; at 06:00Z clocks go back to 01:00 EST
    const user = fresh('night');
    expect((await t.api('PUT', `/v1/users/${user}`, { timezone: 'America/New_York' })).status).toBe(200);
    await prefs(user, { quietHours: { start: '22:00', end: '07:00' } });
    const category = fresh('news');
    const v = await view(t, await post(t, { to: [user], category, channels: ['in_app', 'email'] }));
    for (const channel of ['in_app', 'email']) {
      const d = find(v, user, channel);
      expect(d.status).toBe('pending');
      expect(d.reason).toBe('quiet_hours');
      // 07:00 EST, not 07:00 EDT (11:00Z): ten hours of quiet that night.
      expect(new Date(d.nextAttemptAt as string).toISOString()).toBe('2026-11-01T12:00:00.000Z');
    }
    const deferred = v.timeline.filter((e) => e.event === 'deferred');
    expect(deferred.map((e) => e.detail.until && new Date(e.detail.until).toISOString())).toEqual([
      '2026-11-01T12:00:00.000Z',
      '2026-11-01T12:00:00.000Z',
    ]);
    expectExplained(v, 2);

    const critical = await view(t, await post(t, { to: [user], category, channels: ['email'], priority: 'critical' }));
    expect(find(critical, user, 'email').reason).toBeNull();
    const off = fresh('ops');
    await t.api('PUT', `/v1/categories/${off}`, { quietHours: false });
    const ops = await view(t, await post(t, { to: [user], category: off, channels: ['email'] }));
    expect(find(ops, user, 'email').reason).toBeNull();
    fixed = new Date('2026-11-01T12:00:00Z');
    const morning = await view(t, await post(t, { to: [user], category, channels: ['email'] }));
    expect(find(morning, user, 'email').reason).toBeNull();
  });

  it("a category's policy fills the priority and channels a notification left out, and digests", async () => {
    const category = fresh('weekly');
    await t.api('PUT', `/v1/categories/${category}`, {
      priority: 'high',
      channels: ['in_app', 'email'],
      digest: { window: 'PT1H' },
    });
    fixed = new Date('2026-11-01T15:20:00Z');
    const v = await view(t, await post(t, { to: [fresh('d')], category }));
    expect(v.priority).toBe('high');
    expect(v.channels).toEqual(['in_app', 'email']);
    expect(v.deliveries.map((d) => d.reason)).toEqual(['digested', 'digested']);
    expect(v.timeline.filter((e) => e.event === 'digested')).toHaveLength(2);
  });

  it('a preferences change applies to the next notification at once (the cache is forgotten)', async () => {
    fixed = new Date('2026-11-01T15:00:00Z');
    const user = fresh('c');
    const category = fresh('chat');
    // Cached as "no preferences" by this first notification.
    const first = await view(t, await post(t, { to: [user], category, channels: ['email'] }));
    expect(first.deliveries[0]?.reason).toBeNull();
    await prefs(user, { channels: { email: false } });
    const second = await view(t, await post(t, { to: [user], category, channels: ['email'] }));
    expect(second.deliveries[0]?.reason).toBe('opted_out');
    await prefs(user, {});
    const third = await view(t, await post(t, { to: [user], category, channels: ['email'] }));
    expect(third.deliveries[0]?.reason).toBeNull();
  });
});

describe.each(['pglite', 'postgres'] as const)('the decider at send time (%s)', (store) => {
  let t: TestHerald;
  let offsetMs = 0;
  const clock: Clock = { now: () => new Date(Date.now() + offsetMs) };
  beforeAll(async () => {
    t = await startTestHerald({ store, clock });
  });
  afterAll(async () => {
    await t?.stop();
  });
  const settled = (id: string) =>
    eventually(async () => {
      const v = await view(t, id);
      return v.counts.pending || v.counts.processing ? null : v;
    }, `notification ${id} settled`);

  it('caps: overflow drop → skipped capped beyond max in the window', async () => {
    const category = fresh('capped');
    const user = fresh('u');
    const put = await t.api('PUT', `/v1/categories/${category}`, {
      caps: { in_app: { max: 2, per: 'P1D', overflow: 'drop' } },
    });
    expect(put.status).toBe(200);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await post(t, { to: [user], category }));
    const views = await Promise.all(ids.map(settled));
    const reasons = views.map((v) => v.deliveries[0]?.reason ?? null).sort();
    expect(reasons).toEqual(['capped', null, null]);
    for (const v of views) expectExplained(v, 1);
    const inbox = await t.api('GET', `/v1/users/${user}/inbox`);
    expect(inbox.json.items).toHaveLength(2);
  });

  it('caps: overflow digest → the delivery beyond max joins the digest of the window (pending, digested)', async () => {
    const category = fresh('chatty');
    const user = fresh('u');
    const put = await t.api('PUT', `/v1/categories/${category}`, {
      digest: { window: 'P1D' },
      caps: { in_app: { max: 1, per: 'P1D', overflow: 'digest' } },
    });
    expect(put.status).toBe(200);
    const ids = [await post(t, { to: [user], category }), await post(t, { to: [user], category })];
    const views = await Promise.all(
      ids.map((id) =>
        eventually(async () => {
          const v = await view(t, id);
          const d = v.deliveries[0];
          return d && (d.state === 'sent' || d.reason === 'digested') ? v : null;
        }, `notification ${id} sent or digested`),
      ),
    );
    const states = views.map((v) => `${v.deliveries[0]?.state}:${v.deliveries[0]?.reason}`).sort();
    expect(states).toEqual(['pending:digested', 'sent:null']);
    const digested = views.find((v) => v.deliveries[0]?.reason === 'digested') as View;
    // Due with its digest, at the end of the day's window (P1D windows are aligned to the epoch: UTC days).
    const dayEnd = (Math.floor(Date.now() / 86_400_000) + 1) * 86_400_000;
    expect(new Date(digested.deliveries[0]?.nextAttemptAt as string).getTime()).toBe(dayEnd);
    expectExplained(digested, 1);
    expect((await t.api('GET', `/v1/users/${user}/inbox`)).json.items).toHaveLength(1);
  });

  it('ttl: a delivery taken after its notification expired → skipped expired', async () => {
    const user = fresh('u');
    const sendAt = new Date(Date.now() + 1500).toISOString();
    const id = await post(t, { to: [user], category: fresh('flash'), ttl: 'PT1M', sendAt });
    // Before it is due, the worker's clock jumps past the expiry.
    offsetMs = 3_600_000;
    try {
      const v = await settled(id);
      expect(v.deliveries[0]?.status).toBe('skipped');
      expect(v.deliveries[0]?.reason).toBe('expired');
      expectExplained(v, 1);
    } finally {
      offsetMs = 0;
    }
  });
});
