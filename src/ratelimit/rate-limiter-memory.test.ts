/** The in-process limiter's own promises: bounded memory, a monotonic default clock, checked options. */
import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from './rate-limiter-memory.ts';

describe('MemoryRateLimiter', () => {
  it('forgets idle buckets: memory follows the keys active lately, not every key ever seen', () => {
    // A bucket of 5 at 10/s is full again 0.1–0.5 s after its last request.
    const l = new MemoryRateLimiter({ rps: 10, burst: 5 });
    let largest = 0;
    for (let round = 0; round < 40; round++) {
      const now = round * 1000;
      for (let i = 0; i < 3000; i++) {
        l.takeNow(`round-${round}-key-${i}`, now);
        largest = Math.max(largest, l.size);
      }
    }
    // 120,000 keys seen, 3,000 active at a time.
    expect(largest).toBeLessThanOrEqual(2 * 3000 + 1024);
    expect(l.size).toBeLessThanOrEqual(2 * 3000);
  });

  it('never forgets a bucket that is not full (forgetting it would hand out a fresh burst)', () => {
    const l = new MemoryRateLimiter({ rps: 1, burst: 2 });
    l.takeNow('busy', 0);
    l.takeNow('busy', 0);
    // Enough new keys to force several sweeps, all within the busy bucket's refill time.
    for (let i = 0; i < 10_000; i++) l.takeNow(`other-${i}`, 500);
    expect(l.takeNow('busy', 900).allowed).toBe(false);
    expect(l.takeNow('busy', 1000).allowed).toBe(true);
  });

  it('by default reads the monotonic clock: a fresh limiter serves its burst now, then refuses', async () => {
    const l = new MemoryRateLimiter({ rps: 0.001, burst: 2 });
    expect((await l.take('k')).allowed).toBe(true);
    expect((await l.take('k')).allowed).toBe(true);
    const refused = await l.take('k');
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBeGreaterThan(990);
  });

  it('refuses options that cannot make a bucket', () => {
    expect(() => new MemoryRateLimiter({ rps: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new MemoryRateLimiter({ rps: Number.NaN, burst: 1 })).toThrow(RangeError);
    expect(() => new MemoryRateLimiter({ rps: 1, burst: 0 })).toThrow(RangeError);
    expect(() => new MemoryRateLimiter({ rps: 1, burst: 1.5 })).toThrow(RangeError);
  });

  it('costs about a microsecond a take (no allocation-heavy work on the hot path)', () => {
    const l = new MemoryRateLimiter({ rps: 1e6, burst: 1e6 });
    const keys = Array.from({ length: 16 }, (_, i) => `key-digest-${i}`);
    for (let i = 0; i < 100_000; i++) l.takeNow(keys[i & 15] as string, i / 1000);
    const n = 500_000;
    const start = performance.now();
    for (let i = 0; i < n; i++) l.takeNow(keys[i & 15] as string, 100 + i / 1000);
    const perTakeUs = ((performance.now() - start) * 1000) / n;
    // Typically 0.05–0.2 µs; the bound leaves room for a machine loaded many times over.
    expect(perTakeUs).toBeLessThan(5);
  });
});
