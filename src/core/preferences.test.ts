import { describe, expect, it } from 'vitest';
import { HeraldError } from './errors.ts';
import { PreferenceGate } from './preference-gate.ts';
import { parsePreferences } from './preference-input.ts';
import { categoryKeys, emptyPreferences, optedOut, type Preferences } from './preferences.ts';
import type { DeliveryJob } from './types.ts';

const prefs = (p: Partial<Preferences>): Preferences => ({ ...emptyPreferences(), ...p });

describe('optedOut', () => {
  it('nobody opted out of anything with empty preferences', () => {
    expect(optedOut(emptyPreferences(), 'comment.reply', 'email')).toBe(false);
  });

  it('false opts out of every channel; an object per channel', () => {
    const p = prefs({ categories: { 'comment.reply': false, 'billing.invoice': { email: false } } });
    expect(optedOut(p, 'comment.reply', 'email')).toBe(true);
    expect(optedOut(p, 'comment.reply', 'sms')).toBe(true);
    expect(optedOut(p, 'billing.invoice', 'email')).toBe(true);
    expect(optedOut(p, 'billing.invoice', 'sms')).toBe(false);
    expect(optedOut(p, 'comment.mention', 'email')).toBe(false);
  });

  it('a .* key covers every category below the prefix, not the prefix itself', () => {
    const p = prefs({ categories: { 'marketing.*': false } });
    expect(optedOut(p, 'marketing.weekly', 'email')).toBe(true);
    expect(optedOut(p, 'marketing.weekly.eu', 'push')).toBe(true);
    expect(optedOut(p, 'marketing', 'email')).toBe(false);
    expect(optedOut(p, 'marketingx.weekly', 'email')).toBe(false);
  });

  it('the most specific key wins: exact over prefix, longer prefix over shorter', () => {
    const p = prefs({
      categories: { 'marketing.*': false, 'marketing.news.*': true, 'marketing.news.flash': false },
    });
    expect(optedOut(p, 'marketing.weekly', 'email')).toBe(true);
    expect(optedOut(p, 'marketing.news.daily', 'email')).toBe(false);
    expect(optedOut(p, 'marketing.news.flash', 'email')).toBe(true);
  });

  it('an object that does not name the channel passes the question to the next key', () => {
    const p = prefs({ categories: { 'marketing.*': false, 'marketing.weekly': { email: true } } });
    expect(optedOut(p, 'marketing.weekly', 'email')).toBe(false);
    expect(optedOut(p, 'marketing.weekly', 'sms')).toBe(true);
  });

  it('channels.X: false opts out of X, unless a category entry says otherwise (more specific)', () => {
    const p = prefs({
      channels: { email: false, sms: true },
      categories: { 'billing.*': { email: true }, 'security.alert': true, 'promo.*': { sms: false } },
    });
    expect(optedOut(p, 'comment.reply', 'email')).toBe(true);
    expect(optedOut(p, 'comment.reply', 'push')).toBe(false);
    expect(optedOut(p, 'billing.invoice', 'email')).toBe(false);
    expect(optedOut(p, 'security.alert', 'email')).toBe(false);
    expect(optedOut(p, 'promo.spring', 'sms')).toBe(true);
    expect(optedOut(p, 'promo.spring', 'email')).toBe(true);
  });

  it('lists the keys that may speak for a category, most specific first', () => {
    expect(categoryKeys('a.b.c')).toEqual(['a.b.c', 'a.b.*', 'a.*']);
    expect(categoryKeys('solo')).toEqual(['solo']);
  });

  it('ignores inherited properties (a category named like an Object method)', () => {
    expect(optedOut(emptyPreferences(), 'constructor', 'email')).toBe(false);
    expect(optedOut(prefs({ categories: { x: { email: false } } }), 'x', 'toString' as never)).toBe(false);
  });
});

describe('parsePreferences', () => {
  const fieldsOf = (body: unknown): string[] => {
    try {
      parsePreferences(body);
    } catch (e) {
      expect(e).toBeInstanceOf(HeraldError);
      expect((e as HeraldError).code).toBe('HERALD_ERR_VALIDATION');
      return ((e as HeraldError).details as { field: string }[]).map((d) => d.field);
    }
    throw new Error(`accepted ${JSON.stringify(body)}`);
  };

  it("takes API.md's example as it is", () => {
    const body = {
      channels: { email: false },
      categories: { 'marketing.*': false, 'comment.reply': { email: false } },
      quietHours: { start: '22:00', end: '07:00' },
    };
    expect(parsePreferences(body)).toEqual(body);
  });

  it('an empty object is the empty shape; no body at all is refused', () => {
    expect(parsePreferences({})).toEqual({ channels: {}, categories: {}, quietHours: null });
    expect(fieldsOf(undefined)).toEqual(['(body)']);
    expect(fieldsOf(null)).toEqual(['(body)']);
    expect(parsePreferences({ quietHours: null }).quietHours).toBeNull();
  });

  it('refuses unknown channels, naming them', () => {
    expect(fieldsOf({ channels: { fax: false } })).toEqual(['channels.fax']);
    expect(fieldsOf({ categories: { 'a.b': { pigeon: false } } })).toEqual(['categories.a.b.pigeon']);
  });

  it('refuses values that are not booleans or objects of booleans', () => {
    expect(fieldsOf({ channels: { email: 'no' } })).toEqual(['channels.email']);
    expect(fieldsOf({ channels: { email: 0 } })).toEqual(['channels.email']);
    expect(fieldsOf({ categories: { 'a.b': 'off' } })).toEqual(['categories.a.b']);
    expect(fieldsOf({ categories: { 'a.b': { email: null } } })).toEqual(['categories.a.b.email']);
    expect(fieldsOf({ categories: { 'a.b': {} } })).toEqual(['categories.a.b']);
    expect(fieldsOf({ categories: [] })).toEqual(['categories']);
    expect(fieldsOf('x')).toEqual(['(body)']);
  });

  it('refuses bad category keys: the category name rules, with .* only at the end', () => {
    for (const key of ['a..b', '*', '.*', 'a.*.b', 'a b', 'a.**', '', 'x'.repeat(121), 'a.b*']) {
      expect(fieldsOf({ categories: { [key]: false } }), key).toEqual([`categories.${key}`]);
    }
    expect(parsePreferences({ categories: { 'a-b_c.D9.*': false } }).categories).toEqual({ 'a-b_c.D9.*': false });
  });

  it('refuses quiet hours that are not HH:MM, or empty', () => {
    expect(fieldsOf({ quietHours: { start: '24:00', end: '07:00' } })).toEqual(['quietHours.start']);
    expect(fieldsOf({ quietHours: { start: '7:00', end: '07:00' } })).toEqual(['quietHours.start']);
    expect(fieldsOf({ quietHours: { start: '22:00', end: '07:60' } })).toEqual(['quietHours.end']);
    expect(fieldsOf({ quietHours: { start: '22:00' } })).toEqual(['quietHours.end']);
    expect(fieldsOf({ quietHours: { start: '22:00', end: '22:00' } })).toEqual(['quietHours.end']);
    expect(fieldsOf({ quietHours: { start: '22:00', end: '07:00', tz: 'UTC' } })).toEqual(['quietHours.tz']);
  });

  it('refuses unknown fields and more than 500 category keys', () => {
    expect(fieldsOf({ channel: {} })).toEqual(['channel']);
    const many = Object.fromEntries(Array.from({ length: 501 }, (_, i) => [`c${i}`, false]));
    expect(fieldsOf({ categories: many })).toEqual(['categories']);
  });
});

describe('PreferenceGate', () => {
  const job = (channel: DeliveryJob['channel'], category = 'comment.reply'): DeliveryJob => ({
    deliveryId: 'd1',
    leaseToken: 't',
    attempt: 1,
    channel,
    lane: 'normal',
    userId: 'u1',
    notification: {
      id: 'n1',
      category,
      priority: 'normal',
      title: null,
      body: null,
      data: null,
      groupKey: null,
      createdAt: new Date(),
    },
    user: null,
  });

  function storeWith(p: Preferences | null) {
    const reads: string[] = [];
    return {
      reads,
      store: {
        async getPreferencesOfUsers(userIds: readonly string[]) {
          reads.push(...userIds);
          return new Map(p ? userIds.map((u) => [u, p] as const) : []);
        },
      },
    };
  }

  it('skips a delivery the user opted out of, with reason opted_out', async () => {
    const { store } = storeWith(prefs({ categories: { 'comment.reply': { email: false } } }));
    const gate = new PreferenceGate(store);
    expect(await gate.check(job('email'))).toEqual({
      ok: false,
      skipped: 'user u1 opted out of comment.reply on email',
      reason: 'opted_out',
    });
    expect(await gate.check(job('sms'))).toBeNull();
    expect(await gate.check(job('email', 'comment.mention'))).toBeNull();
  });

  it('lets everything through for a user without preferences', async () => {
    const { store, reads } = storeWith(null);
    expect(await new PreferenceGate(store).check(job('email'))).toBeNull();
    expect(reads).toEqual(['u1']);
  });

  it('reads the preferences of deliveries checked together in one store read', async () => {
    const calls: string[][] = [];
    const gate = new PreferenceGate({
      async getPreferencesOfUsers(userIds: readonly string[]) {
        calls.push([...userIds]);
        return new Map([['u2', prefs({ channels: { email: false } })]]);
      },
    });
    const jobs = ['u1', 'u2', 'u3'].map((u) => ({ ...job('email'), userId: u }));
    const verdicts = await Promise.all(jobs.map((j) => gate.check(j)));
    expect(verdicts.map((v) => v?.ok ?? 'send')).toEqual(['send', false, 'send']);
    expect(calls.flat().sort()).toEqual(['u1', 'u2', 'u3']);
    expect(calls.length).toBeLessThan(3);
  });

  it('reads nothing for in_app (not gated yet)', async () => {
    const { store, reads } = storeWith(prefs({ channels: { in_app: false } }));
    expect(await new PreferenceGate(store).check(job('in_app'))).toBeNull();
    expect(reads).toEqual([]);
  });

  it('a required category ignores opt-outs, without a read', async () => {
    const { store, reads } = storeWith(prefs({ channels: { email: false } }));
    const gate = new PreferenceGate(store, (c) => c === 'auth.reset');
    expect(await gate.check(job('email', 'auth.reset'))).toBeNull();
    expect(reads).toEqual([]);
    expect(await gate.check(job('email', 'comment.reply'))).toMatchObject({ reason: 'opted_out' });
  });
});
