/**
 * The Store's part of channel steps, on every adapter: a step's delivery is due `after` the
 * notification and carries its condition to the worker; the steps come back with the notification;
 * an accept that completes in-app deliveries inline leaves a delayed in-app step pending; and
 * siblingInAppState finds each user's in-app delivery however the channels are ordered.
 */
import { expect, it } from 'vitest';
import { CHANNELS, type ChannelStep, type NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { forEachStore } from './support/databases.ts';
import { newNotification } from './support/notifications.ts';

const LEASE = 60_000;

function request(overrides: Partial<NewNotification> = {}): NewNotification {
  return newNotification({ to: ['alice'], category: 'comment.reply', title: 'New reply', ...overrides });
}

const step = (channel: ChannelStep['channel'], afterMs: number, unless: ChannelStep['unless'] = null): ChannelStep => ({
  channel,
  after: afterMs ? `PT${afterMs / 1000}S` : null,
  afterMs,
  unless,
});

async function deliveries(store: SqlStore, notificationId: string) {
  return store.sql.query<{
    id: string;
    user_id: string;
    channel: string;
    state: string;
    next_attempt_at: Date;
    unless: string | null;
  }>(
    'SELECT id, user_id, channel, state, next_attempt_at, unless FROM deliveries WHERE notification_id = $1 ORDER BY id',
    [notificationId],
  );
}

forEachStore('channel steps in the store', ({ store }) => {
  it('makes a step due after the notification, keeps its condition, and gives the steps back as given', async () => {
    const sendAt = new Date(Date.now() + 60_000);
    const n = request({
      channels: ['in_app', 'email', 'sms'],
      steps: [step('email', 600_000, 'read'), step('sms', 0, 'delivered')],
      sendAt,
    });
    const [out] = await store().accept([n], { inAppUpTo: 10 });
    if (out?.kind !== 'accepted') throw new Error('not accepted');
    const rows = await deliveries(store(), n.id);
    const by = (c: string) => rows.find((r) => r.channel === c);
    expect(by('in_app')).toMatchObject({ state: 'pending', unless: null });
    expect(by('in_app')?.next_attempt_at.getTime()).toBe(sendAt.getTime());
    expect(by('email')).toMatchObject({ state: 'pending', unless: 'read' });
    expect(by('email')?.next_attempt_at.getTime()).toBe(sendAt.getTime() + 600_000);
    expect(by('sms')).toMatchObject({ unless: 'delivered' });
    expect(by('sms')?.next_attempt_at.getTime()).toBe(sendAt.getTime());
    // The bus hears of each at its own time.
    expect(out.jobs.find((j) => j.id === by('email')?.id)?.runAt.getTime()).toBe(sendAt.getTime() + 600_000);
    expect(out.jobs.find((j) => j.id === by('sms')?.id)?.runAt.getTime()).toBe(sendAt.getTime());

    const v = await store().getNotification(n.id);
    expect(v?.channels).toEqual(['in_app', 'email', 'sms']);
    expect(v?.steps).toEqual([
      { channel: 'email', after: 'PT600S', unless: 'read' },
      { channel: 'sms', after: null, unless: 'delivered' },
    ]);
    const [stored] = await store().sql.query<{ steps: unknown }>('SELECT steps FROM notifications WHERE id = $1', [
      n.id,
    ]);
    expect(stored?.steps).toEqual([
      { channel: 'email', after: 'PT600S', unless: 'read' },
      { channel: 'sms', unless: 'delivered' },
    ]);
  });

  it('hands the condition to the worker with the job', async () => {
    const n = request({ channels: ['in_app', 'email'], steps: [step('email', 0, 'read')] });
    await store().accept([n], { inAppUpTo: 10 });
    const work = await store().startAttempts({ lane: 'normal', max: 10 }, LEASE);
    expect(work.jobs.map((j) => [j.channel, j.unless])).toEqual([['email', 'read']]);
    expect(work.inbox).toEqual([]); // completed by the accept already
  });

  it('completes an undelayed in-app delivery inline, but not a delayed in-app step', async () => {
    const now = request({ channels: ['in_app', 'email'], steps: [step('email', 5_000, 'read')] });
    const later = request({ channels: ['in_app'], steps: [step('in_app', 5_000)] });
    const [a, b] = await store().accept([now, later], { inAppUpTo: 10 });
    expect(a?.kind === 'accepted' && a.delivered.length).toBe(1);
    expect(b?.kind === 'accepted' && b.delivered.length).toBe(0);
    expect((await deliveries(store(), later.id))[0]).toMatchObject({ channel: 'in_app', state: 'pending' });
    // Not taken before it is due.
    const work = await store().startAttempts({ lane: 'normal', max: 10 }, LEASE);
    expect([...work.jobs, ...work.inbox]).toEqual([]);
  });

  it("finds each user's own in-app delivery, wherever in_app sits among every channel", async () => {
    const users = ['u1', 'u2', 'u3', 'u4'];
    const channels = [...CHANNELS].reverse(); // in_app last: the farthest from the first channel
    const n = request({ to: users, channels, steps: [step(channels[0] as ChannelStep['channel'], 0, 'read')] });
    await store().accept([n], { inAppUpTo: 10 });
    // u2 reads; u3 has it delivered.
    await store().markRead('u2', { all: true });
    await store().markDelivered([{ userId: 'u3', seq: 1 }]);
    const rows = await deliveries(store(), n.id);
    const expected: Record<string, string> = { u1: 'sent', u2: 'read', u3: 'delivered', u4: 'sent' };
    expect(rows).toHaveLength(users.length * CHANNELS.length);
    // (Asked of every delivery but the in-app ones themselves, which never carry a condition.)
    for (const r of rows.filter((x) => x.channel !== 'in_app')) {
      const state = await store().siblingInAppState({ id: r.id, notificationId: n.id, userId: r.user_id });
      expect(state, `${r.user_id} ${r.channel}`).toBe(expected[r.user_id]);
    }
  });

  it('answers null when the notification has no in-app delivery for that user', async () => {
    const n = request({ to: ['u1', 'u2'], channels: ['email', 'sms'], steps: [step('email', 0, 'read')] });
    await store().accept([n]);
    for (const r of await deliveries(store(), n.id)) {
      expect(await store().siblingInAppState({ id: r.id, notificationId: n.id, userId: r.user_id })).toBeNull();
    }
  });
});
