import { describe, expect, it } from 'vitest';
import { ProviderPacer } from './provider-pacer.ts';

describe('ProviderPacer', () => {
  it('lets the burst go at once, then one send per interval', () => {
    let now = 0;
    const p = new ProviderPacer({ perSecond: 100, burst: 3 }, () => now);
    expect([p.tryTake(), p.tryTake(), p.tryTake()]).toEqual([0, 0, 0]);
    expect(p.tryTake()).toBeCloseTo(10);
    now = 10;
    expect(p.tryTake()).toBe(0);
    expect(p.tryTake()).toBeCloseTo(10);
  });

  it('never lets more than perSecond × t + burst through in any window, however often it is asked', () => {
    let now = 0;
    const p = new ProviderPacer({ perSecond: 200, burst: 10 }, () => now);
    const sent: number[] = [];
    // Callers ask at random moments, many at once, for 20 s.
    for (let step = 0; step < 40_000; step++) {
      now += Math.random() * 1;
      for (let k = 0; k < 3; k++) if (p.tryTake() === 0) sent.push(now);
    }
    let j = 0;
    for (let i = 0; i < sent.length; i++) {
      while ((sent[j] as number) < (sent[i] as number) - 1000) j++;
      expect(i - j + 1).toBeLessThanOrEqual(210);
    }
    // And it does not hold back: close to the rate over the run.
    expect(sent.length / (now / 1000)).toBeGreaterThan(195);
  });

  it('after a stall lets only the burst go at once', () => {
    let now = 0;
    const p = new ProviderPacer({ perSecond: 100, burst: 2 }, () => now);
    p.tryTake();
    now = 5_000;
    expect([p.tryTake(), p.tryTake()]).toEqual([0, 0]);
    expect(p.tryTake()).toBeGreaterThan(0);
  });

  it('refuses settings that mean nothing', () => {
    expect(() => new ProviderPacer({ perSecond: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new ProviderPacer({ perSecond: 1, burst: 0 })).toThrow(RangeError);
  });
});
