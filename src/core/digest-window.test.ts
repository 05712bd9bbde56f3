import { describe, expect, it } from 'vitest';
import { cronProblem, digestWindow } from './digest-window.ts';

const at = (iso: string) => new Date(iso);
const iso = (w: { windowStart: Date; windowEnd: Date }) => [w.windowStart.toISOString(), w.windowEnd.toISOString()];

describe('digestWindow', () => {
  it('cuts fixed windows aligned to the epoch, whatever the zone', () => {
    const hour = { window: 'PT1H', windowMs: 3_600_000 };
    expect(iso(digestWindow(hour, 'Asia/Tokyo', at('2026-12-07T10:59:59.999Z')))).toEqual([
      '2026-12-07T10:00:00.000Z',
      '2026-12-07T11:00:00.000Z',
    ]);
    expect(iso(digestWindow(hour, null, at('2026-12-07T11:00:00.000Z')))).toEqual([
      '2026-12-07T11:00:00.000Z',
      '2026-12-07T12:00:00.000Z',
    ]);
  });

  it('runs from one cron time to the next in the user zone, across the DST change', () => {
    const nine = { cron: '0 9 * * *' };
    // 2026-11-01: New York leaves daylight time at 06:00Z (02:00 EDT → 01:00 EST).
    expect(iso(digestWindow(nine, 'America/New_York', at('2026-11-01T12:00:00Z')))).toEqual([
      '2026-10-31T13:00:00.000Z', // 09:00 EDT
      '2026-11-01T14:00:00.000Z', // 09:00 EST
    ]);
    // Exactly at a cron time: the window that starts there.
    expect(iso(digestWindow(nine, 'America/New_York', at('2026-11-01T14:00:00Z')))[0]).toBe('2026-11-01T14:00:00.000Z');
    // No zone, or an unknown one: UTC.
    expect(iso(digestWindow(nine, null, at('2026-11-01T12:00:00Z')))).toEqual([
      '2026-11-01T09:00:00.000Z',
      '2026-11-02T09:00:00.000Z',
    ]);
    expect(iso(digestWindow(nine, 'Mars/Olympus', at('2026-11-01T12:00:00Z')))[1]).toBe('2026-11-02T09:00:00.000Z');
  });

  it('fires a time that occurs twice once', () => {
    const w = digestWindow({ cron: '30 1 * * *' }, 'America/New_York', at('2026-11-01T05:45:00Z'));
    // 01:30 EDT (05:30Z) happened; the 01:30 EST an hour later is the same wall time: not a new window.
    expect(iso(w)).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });
});

describe('cronProblem', () => {
  it('accepts five fields and names what is wrong otherwise', () => {
    expect(cronProblem('0 9 * * 1-5')).toBeNull();
    expect(cronProblem('0 0 9 * * *')).toMatch(/5 fields/);
    expect(cronProblem('61 * * * *')).toMatch(/not a valid cron/);
  });
});
