/**
 * The Store's part of the decider (ADR 13), on every adapter: decisions given to `accept` are stored
 * with the deliveries in the accepting statement — `skipped` with a reason, `pending` until the end
 * of quiet hours, or in the user's digest of the window (one digest row per user × category ×
 * channel × window, however many members and accepts) — each with its timeline event; a digest
 * already taken takes no more members; undecided deliveries are written exactly as before.
 */
import { expect, it } from 'vitest';
import { decisionKey } from '../src/core/decider.ts';
import type { Decision, NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { forEachStore } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';

function request(overrides: Partial<NewNotification> = {}): NewNotification {
  return newNotification({
    to: ['alice', 'bob', 'carol', 'dave'],
    category: 'digest.me',
    channels: ['in_app', 'email'],
    expiresAt: new Date(Date.now() + 3_600_000),
    ...overrides,
  });
}

const decide = (n: NewNotification, entries: [string, 'in_app' | 'email', Decision][]) =>
  new Map([[n.id, new Map(entries.map(([u, c, d]) => [decisionKey(u, c), d]))]]);

async function rows(store: SqlStore, notificationId: string) {
  return store.sql.query<{
    user_id: string;
    channel: string;
    state: string;
    reason: string | null;
    next_attempt_at: Date;
    never: boolean;
    digest_id: string | null;
    via_worker: boolean;
  }>(
    `SELECT user_id, channel, state, reason, CASE WHEN next_attempt_at <> 'infinity' THEN next_attempt_at END AS next_attempt_at,
            next_attempt_at = 'infinity' AS never, digest_id, via_worker FROM deliveries
     WHERE notification_id = $1 ORDER BY user_id, channel`,
    [notificationId],
  );
}

forEachStore('decisions in the store', ({ store }) => {
  it('stores each decision with its delivery and a timeline event, and the rest as before', async () => {
    const until = new Date(Date.now() + 7 * 3_600_000);
    const start = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000);
    const end = new Date(start.getTime() + 3_600_000);
    const n = request();
    const [out] = await store().accept([n], {
      inAppUpTo: 100,
      decisions: decide(n, [
        ['alice', 'email', { kind: 'skip', reason: 'opted_out' }],
        ['bob', 'in_app', { kind: 'defer', reason: 'quiet_hours', until }],
        ['bob', 'email', { kind: 'defer', reason: 'quiet_hours', until }],
        ['carol', 'email', { kind: 'digest', windowStart: start, windowEnd: end }],
        ['dave', 'in_app', { kind: 'worker' }],
      ]),
    });
    if (out?.kind !== 'accepted') throw new Error('not accepted');
    const r = await rows(store(), n.id);
    const of = (u: string, c: string) => r.find((x) => x.user_id === u && x.channel === c);
    expect(of('alice', 'email')).toMatchObject({ state: 'skipped', reason: 'opted_out' });
    expect(of('alice', 'in_app')).toMatchObject({ state: 'sent', reason: null });
    expect(of('bob', 'in_app')).toMatchObject({ state: 'pending', reason: 'quiet_hours', via_worker: false });
    expect(of('bob', 'in_app')?.next_attempt_at.getTime()).toBe(until.getTime());
    expect(of('carol', 'email')).toMatchObject({ state: 'pending', reason: 'digested' });
    // Never taken by a lane: sent inside its digest.
    expect(of('carol', 'email')?.never).toBe(true);
    expect(of('carol', 'in_app')).toMatchObject({ state: 'sent' });
    expect(of('dave', 'in_app')).toMatchObject({ state: 'pending', via_worker: true });
    // Inline completion only for the undecided in-app deliveries; quiet hours announced at their end.
    expect(out.delivered.map((d) => d.userId).sort()).toEqual(['alice', 'carol']);
    const bobIds = r.filter((x) => x.user_id === 'bob').length;
    expect(bobIds).toBe(2);
    expect(out.jobs.filter((j) => j.runAt.getTime() === until.getTime())).toHaveLength(2);

    const [digest] = await store().sql.query<{ id: string; state: string; window_end: Date }>(
      `SELECT id, state, window_end FROM digests WHERE user_id = 'carol' AND category = 'digest.me' AND channel = 'email'`,
    );
    expect(digest?.state).toBe('pending');
    expect(digest?.window_end.getTime()).toBe(end.getTime());
    expect(of('carol', 'email')?.digest_id).toBe(digest?.id);

    const v = await store().getNotification(n.id);
    const events = v?.timeline.filter((t) => ['skipped', 'deferred', 'digested'].includes(t.event));
    expect(events?.map((t) => [t.event, (t.detail as { userId: string }).userId]).sort()).toEqual([
      ['deferred', 'bob'],
      ['deferred', 'bob'],
      ['digested', 'carol'],
      ['skipped', 'alice'],
    ]);
    const skipped = events?.find((t) => t.event === 'skipped')?.detail;
    expect(skipped).toEqual({ userId: 'alice', channel: 'email', reason: 'opted_out' });
    // The view shows a digested delivery due when its digest is.
    const carol = v?.deliveries.find((x) => x.userId === 'carol' && x.channel === 'email');
    expect(carol).toMatchObject({ status: 'pending', reason: 'digested' });
    expect(carol?.nextAttemptAt?.getTime()).toBe(end.getTime());
    const deferred = events?.find((t) => t.event === 'deferred')?.detail as { until: string };
    expect(new Date(deferred.until).getTime()).toBe(until.getTime());
  });

  it('collects a window into one digest across accepts, and sends a member of a taken digest on its own', async () => {
    const start = new Date(Date.now() - 60_000);
    const end = new Date(Date.now() + 3_600_000);
    const d: Decision = { kind: 'digest', windowStart: start, windowEnd: end };
    const ns = [0, 1, 2].map(() => request({ to: ['erin'], channels: ['email'], category: 'digest.two' }));
    // Two in one batch, one in a concurrent accept.
    await Promise.all([
      store().accept(ns.slice(0, 2), {
        decisions: new Map(ns.slice(0, 2).map((n) => [n.id, new Map([[decisionKey('erin', 'email'), d]])])),
      }),
      store().accept([ns[2] as NewNotification], {
        decisions: decide(ns[2] as NewNotification, [['erin', 'email', d]]),
      }),
    ]);
    const digests = await store().sql.query<{ id: string }>(
      `SELECT id FROM digests WHERE user_id = 'erin' AND category = 'digest.two'`,
    );
    expect(digests).toHaveLength(1);
    const members = await store().sql.query<{ digest_id: string }>(
      `SELECT digest_id FROM deliveries WHERE user_id = 'erin' AND notification_id = ANY($1::uuid[])`,
      [ns.map((n) => n.id)],
    );
    expect(members.map((m) => m.digest_id)).toEqual([0, 1, 2].map(() => digests[0]?.id));

    await store().sql.query(`UPDATE digests SET state = 'processing' WHERE id = $1`, [digests[0]?.id]);
    const late = request({ to: ['erin'], channels: ['email'], category: 'digest.two' });
    await store().accept([late], { decisions: decide(late, [['erin', 'email', d]]) });
    const [row] = await rows(store(), late.id);
    expect(row).toMatchObject({ state: 'pending', reason: null, digest_id: null });
    expect(row?.next_attempt_at.getTime()).toBeLessThanOrEqual(Date.now());
    const v = await store().getNotification(late.id);
    expect(v?.timeline.some((t) => t.event === 'digested')).toBe(false);
  });

  it('writes expires_at with the notification', async () => {
    const n = request({ to: ['frank'] });
    await store().accept([n]);
    const [row] = await store().sql.query<{ expires_at: Date }>('SELECT expires_at FROM notifications WHERE id = $1', [
      n.id,
    ]);
    expect(row?.expires_at.getTime()).toBe(n.expiresAt?.getTime());
  });
});
