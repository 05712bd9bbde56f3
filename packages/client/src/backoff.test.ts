import { describe, expect, it } from 'vitest';
import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from './backoff.ts';

const opts = { baseMs: 500, maxMs: 30_000 };

describe('backoffCeiling', () => {
  it('doubles from baseMs on each attempt', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffCeiling(n, opts))).toEqual([500, 1000, 2000, 4000, 8000, 16_000]);
  });

  it('is capped at maxMs, even for attempts where 2^n overflows', () => {
    expect(backoffCeiling(6, opts)).toBe(30_000);
    expect(backoffCeiling(60, opts)).toBe(30_000);
    expect(backoffCeiling(5000, opts)).toBe(30_000);
    expect(backoffCeiling(Number.MAX_SAFE_INTEGER, opts)).toBe(30_000);
  });

  it('treats negative and fractional attempts as the integer below, at least 0', () => {
    expect(backoffCeiling(-3, opts)).toBe(500);
    expect(backoffCeiling(2.9, opts)).toBe(2000);
  });

  it('defaults to 500 ms doubling up to 30 s', () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 500, maxMs: 30_000 });
  });
});

describe('backoffDelay (full jitter)', () => {
  it('spans [0, ceiling): 0 at random()=0, just under the ceiling at random()→1', () => {
    expect(backoffDelay(3, opts, () => 0)).toBe(0);
    expect(backoffDelay(3, opts, () => 0.999_999)).toBe(3999);
    expect(backoffDelay(3, opts, () => 0.5)).toBe(2000);
    expect(backoffDelay(40, opts, () => 0.999_999)).toBe(29_999);
  });

  it('stays within bounds and is whole milliseconds for every attempt', () => {
    const outOfBounds: string[] = [];
    for (let attempt = 0; attempt < 50; attempt++) {
      const ceiling = backoffCeiling(attempt, opts);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(attempt, opts);
        if (!Number.isInteger(d) || d < 0 || d >= ceiling) outOfBounds.push(`attempt ${attempt}: ${d}`);
      }
    }
    expect(outOfBounds).toEqual([]);
  });

  it('jitters: delays of one attempt spread over the whole range instead of clustering', () => {
    const delays = Array.from({ length: 2000 }, () => backoffDelay(4, opts));
    const ceiling = backoffCeiling(4, opts);
    // Uniform over [0, 8000): every eighth of the range gets a share, the mean is near the middle.
    const buckets = new Array(8).fill(0);
    for (const d of delays) buckets[Math.floor((d / ceiling) * 8)]++;
    for (const b of buckets) expect(b).toBeGreaterThan(100);
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    expect(mean).toBeGreaterThan(ceiling * 0.4);
    expect(mean).toBeLessThan(ceiling * 0.6);
    expect(new Set(delays).size).toBeGreaterThan(1000);
  });
});
