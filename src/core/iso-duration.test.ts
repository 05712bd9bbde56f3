import { describe, expect, it } from 'vitest';
import { formatIsoDuration, parseIsoDuration } from './iso-duration.ts';

const DAY = 86_400_000;
const ms = (text: string, max = 30 * DAY) => {
  const r = parseIsoDuration(text, max);
  return r.ok ? r.ms : r.message;
};

describe('parseIsoDuration', () => {
  it('reads days, hours, minutes and seconds, alone or together', () => {
    expect(ms('PT10M')).toBe(600_000);
    expect(ms('PT1S')).toBe(1_000);
    expect(ms('PT0S')).toBe(0);
    expect(ms('P1D')).toBe(DAY);
    expect(ms('P1DT2H3M4S')).toBe(DAY + 2 * 3_600_000 + 3 * 60_000 + 4_000);
    expect(ms('PT90M')).toBe(90 * 60_000);
    expect(ms('PT36H')).toBe(36 * 3_600_000);
  });

  it('refuses what is not the accepted form', () => {
    for (const bad of [
      '',
      'P',
      'PT',
      'P1DT',
      '10M',
      'pt10m',
      'PT10m',
      'PT-1S',
      'PT+1S',
      'PT1.5S',
      'PT1,5S',
      'P1Y',
      'P1M',
      'P1W',
      'PT1M1H',
      'P1DT1H ',
      ' PT1S',
      'PT1234567890S',
      'PT1H2',
      'PTS',
    ]) {
      expect(parseIsoDuration(bad, 30 * DAY).ok, bad).toBe(false);
    }
  });

  it('says why a month or a fraction is refused', () => {
    expect(ms('P1M')).toMatch(/months/);
    expect(ms('PT0.5S')).toMatch(/fractions/);
  });

  it('bounds the result', () => {
    expect(ms('P30D')).toBe(30 * DAY);
    expect(ms('P30DT1S')).toBe('must be at most P30D');
    expect(ms('PT720H')).toBe(30 * DAY);
    expect(ms('PT2592001S')).toBe('must be at most P30D');
    expect(ms('PT2M', 90_000)).toBe('must be at most PT1M30S');
  });
});

describe('formatIsoDuration', () => {
  it('gives the shortest accepted form, which parses back', () => {
    for (const [n, text] of [
      [0, 'PT0S'],
      [1_000, 'PT1S'],
      [90_000, 'PT1M30S'],
      [DAY, 'P1D'],
      [DAY + 3_600_000, 'P1DT1H'],
      [30 * DAY, 'P30D'],
    ] as const) {
      expect(formatIsoDuration(n)).toBe(text);
      expect(ms(text)).toBe(n);
    }
  });
});
