import { describe, expect, it } from 'vitest';
import { decideOne, quietHoursEnd } from './decider-rules.ts';
import type { CategoryPolicy, NewNotification } from './types.ts';

const NIGHT = { start: '22:00', end: '07:00' };
const NY = 'America/New_York';

describe('quietHoursEnd', () => {
  it('ends at 07:00 local on the night clocks go back in New York (10 hours, not 9)', () => {
    // 2026-11-01 06:00Z: 02:00 EDT becomes 01:00 EST. 07:00 EST is 12:00Z.
    expect(quietHoursEnd(NIGHT, NY, new Date('2026-11-01T03:00:00Z'))?.toISOString()).toBe('2026-11-01T12:00:00.000Z');
    // 01:30 happens twice; both are in the quiet hours, and both end at 07:00 EST.
    expect(quietHoursEnd(NIGHT, NY, new Date('2026-11-01T05:30:00Z'))?.toISOString()).toBe('2026-11-01T12:00:00.000Z');
    expect(quietHoursEnd(NIGHT, NY, new Date('2026-11-01T06:30:00Z'))?.toISOString()).toBe('2026-11-01T12:00:00.000Z');
  });

  it('ends at 07:00 local on the night clocks go forward (8 hours)', () => {
    expect(quietHoursEnd(NIGHT, NY, new Date('2026-03-08T03:00:00Z'))?.toISOString()).toBe('2026-03-08T11:00:00.000Z');
  });

  it('is null outside the quiet hours, and the boundary belongs to the day', () => {
    expect(quietHoursEnd(NIGHT, NY, new Date('2026-11-01T12:00:00Z'))).toBeNull(); // 07:00 EST
    expect(quietHoursEnd(NIGHT, NY, new Date('2026-11-01T01:59:00Z'))).toBeNull(); // 21:59 EDT
    expect(quietHoursEnd(NIGHT, NY, new Date('2026-11-01T11:59:00Z'))?.toISOString()).toBe('2026-11-01T12:00:00.000Z');
  });

  it('handles quiet hours within a day, and UTC for no or an unknown zone', () => {
    const lunch = { start: '12:00', end: '13:30' };
    expect(quietHoursEnd(lunch, null, new Date('2026-06-01T12:15:00Z'))?.toISOString()).toBe(
      '2026-06-01T13:30:00.000Z',
    );
    expect(quietHoursEnd(lunch, 'Mars/Olympus', new Date('2026-06-01T12:15:00Z'))?.toISOString()).toBe(
      '2026-06-01T13:30:00.000Z',
    );
    expect(quietHoursEnd(lunch, null, new Date('2026-06-01T13:30:00Z'))).toBeNull();
  });
});

function n(overrides: Partial<NewNotification> = {}): NewNotification {
  return {
    id: 'n1',
    to: ['u'],
    category: 'marketing.weekly',
    priority: 'normal',
    channels: ['in_app', 'email'],
    steps: null,
    title: 't',
    body: null,
    data: null,
    sendAt: null,
    groupKey: null,
    createdAt: new Date('2026-11-01T03:00:00Z'),
    idempotencyKey: null,
    requestHash: null,
    expiresAt: new Date('2026-12-01T00:00:00Z'),
    ...overrides,
  };
}

function policy(overrides: Partial<CategoryPolicy> = {}): CategoryPolicy {
  return {
    category: 'marketing.weekly',
    priority: null,
    channels: null,
    required: false,
    quietHours: true,
    digest: null,
    caps: {},
    ttl: null,
    ttlMs: null,
    updatedAt: new Date(),
    ...overrides,
  };
}

describe('decideOne', () => {
  const at = new Date('2026-11-01T03:00:00Z');
  const prefs = (p: object) => ({
    preferences: { channels: {}, categories: {}, quietHours: null, ...p },
    timezone: NY,
  });

  it('sends now when nothing says otherwise', () => {
    expect(decideOne(n(), 'email', at, null, null)).toBeUndefined();
    expect(decideOne(n(), 'in_app', at, prefs({}), policy())).toBeUndefined();
  });

  it('skips opted-out channels, in-app included, unless the category is required', () => {
    const ctx = prefs({ categories: { 'marketing.*': false } });
    expect(decideOne(n(), 'in_app', at, ctx, null)).toEqual({ kind: 'skip', reason: 'opted_out' });
    expect(decideOne(n(), 'email', at, ctx, null)).toEqual({ kind: 'skip', reason: 'opted_out' });
    expect(decideOne(n(), 'email', at, ctx, policy({ required: true }))).toBeUndefined();
  });

  it('defers to the end of quiet hours, except critical notifications and categories without quiet hours', () => {
    const ctx = prefs({ quietHours: NIGHT });
    expect(decideOne(n(), 'email', at, ctx, null)).toEqual({
      kind: 'defer',
      reason: 'quiet_hours',
      until: new Date('2026-11-01T12:00:00Z'),
    });
    expect(decideOne(n({ priority: 'critical' }), 'email', at, ctx, null)).toBeUndefined();
    expect(decideOne(n(), 'email', at, ctx, policy({ quietHours: false }))).toBeUndefined();
    // A deferral past the notification's expiry is an expiry.
    const short = n({ expiresAt: new Date('2026-11-01T04:00:00Z') });
    expect(decideOne(short, 'email', at, ctx, null)).toEqual({ kind: 'skip', reason: 'expired' });
  });

  it('digests a digest category in the window of the due time', () => {
    const d = decideOne(n(), 'email', at, null, policy({ digest: { window: 'PT1H', windowMs: 3_600_000 } }));
    expect(d).toEqual({
      kind: 'digest',
      windowStart: new Date('2026-11-01T03:00:00Z'),
      windowEnd: new Date('2026-11-01T04:00:00Z'),
    });
  });

  it('on a channel capped with overflow digest, sends (up to the cap) instead of digesting everything', () => {
    const p = policy({
      digest: { window: 'PT1H', windowMs: 3_600_000 },
      caps: { email: { max: 3, per: 'PT1H', perMs: 3_600_000, overflow: 'digest' } },
    });
    expect(decideOne(n(), 'email', at, null, p)).toBeUndefined();
    expect(decideOne(n(), 'in_app', at, null, p)).toMatchObject({ kind: 'digest' });
  });

  it('sends in-app deliveries a gate must see through a worker', () => {
    const capped = policy({ caps: { in_app: { max: 1, per: 'PT1H', perMs: 3_600_000, overflow: 'drop' } } });
    expect(decideOne(n(), 'in_app', at, null, capped)).toEqual({ kind: 'worker' });
    expect(decideOne(n({ ttl: 'PT30M', ttlMs: 1_800_000 }), 'in_app', at, null, null)).toEqual({ kind: 'worker' });
    expect(decideOne(n({ ttl: 'PT30M', ttlMs: 1_800_000 }), 'email', at, null, null)).toBeUndefined();
  });

  it('skips a delivery due after the expiry (a step beyond the ttl)', () => {
    expect(decideOne(n(), 'email', new Date('2026-12-01T00:00:00Z'), null, null)).toEqual({
      kind: 'skip',
      reason: 'expired',
    });
  });
});
