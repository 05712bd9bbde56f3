import { describe, expect, it } from 'vitest';
import { afterFailure, backoffMs, type RetryPolicy } from './retry-policy.ts';

const policy: RetryPolicy = { baseMs: 1_000, maxAttempts: 5, maxDelayMs: 60_000 };
const NOW = new Date('2026-01-01T00:00:00Z');

/** Deterministic "random" values across [0, 1). */
const EXTREMES = [0, 0.25, 0.5, 0.75, 0.999_999];

describe('backoffMs', () => {
  it('grows exponentially: the window of attempt n is [base·2^(n-1)/2, base·2^(n-1)]', () => {
    for (let attempt = 1; attempt <= 5; attempt++) {
      const ceiling = 1_000 * 2 ** (attempt - 1);
      expect(backoffMs(policy, attempt, () => 0)).toBe(ceiling / 2);
      expect(backoffMs(policy, attempt, () => 0.999_999)).toBe(ceiling);
    }
    // Each window's floor is the previous window's ceiling: a later retry never waits less.
    expect(backoffMs(policy, 2, () => 0)).toBe(backoffMs(policy, 1, () => 0.999_999));
  });

  it('stays within [ceiling/2, ceiling] with the real random source', () => {
    for (let attempt = 1; attempt <= 6; attempt++) {
      const ceiling = Math.min(policy.maxDelayMs, policy.baseMs * 2 ** (attempt - 1));
      const seen = new Set<number>();
      for (let i = 0; i < 500; i++) {
        const d = backoffMs(policy, attempt);
        expect(d).toBeGreaterThanOrEqual(ceiling / 2);
        expect(d).toBeLessThanOrEqual(ceiling);
        seen.add(d);
      }
      // Jitter: 500 draws over a window of ≥ 500 ms are not all the same value.
      expect(seen.size).toBeGreaterThan(10);
    }
  });

  it('is capped by maxDelayMs, however many attempts failed', () => {
    const capped: RetryPolicy = { baseMs: 1_000, maxAttempts: 100, maxDelayMs: 5_000 };
    for (const attempt of [4, 10, 40, 99]) {
      for (const r of EXTREMES) {
        const d = backoffMs(capped, attempt, () => r);
        expect(d).toBeGreaterThanOrEqual(2_500);
        expect(d).toBeLessThanOrEqual(5_000);
      }
    }
    // Very large attempt numbers (2^n overflows to Infinity) still land in the capped window.
    expect(backoffMs(capped, 5_000, () => 0.999_999)).toBe(5_000);
  });
});

describe('afterFailure', () => {
  const transient = { permanent: false };

  it('fails a permanent error at once, whatever the attempt', () => {
    expect(afterFailure(policy, 1, { permanent: true }, NOW)).toEqual({ result: 'failed' });
    expect(afterFailure(policy, 5, { permanent: true }, NOW)).toEqual({ result: 'failed' });
  });

  it('retries a transient error within the backoff window of that attempt', () => {
    for (let attempt = 1; attempt < policy.maxAttempts; attempt++) {
      const r = afterFailure(policy, attempt, transient, NOW);
      if (r.result !== 'retry') throw new Error(`attempt ${attempt}: expected a retry, got ${r.result}`);
      const wait = r.nextAttemptAt.getTime() - NOW.getTime();
      const ceiling = policy.baseMs * 2 ** (attempt - 1);
      expect(wait).toBeGreaterThanOrEqual(ceiling / 2);
      expect(wait).toBeLessThanOrEqual(ceiling);
    }
  });

  it('declares the delivery dead after the last attempt', () => {
    expect(afterFailure(policy, policy.maxAttempts, transient, NOW)).toEqual({ result: 'dead' });
    expect(afterFailure(policy, policy.maxAttempts + 3, transient, NOW)).toEqual({ result: 'dead' });
    const once: RetryPolicy = { ...policy, maxAttempts: 1 };
    expect(afterFailure(once, 1, transient, NOW)).toEqual({ result: 'dead' });
  });

  it('honours a Retry-After longer than the backoff', () => {
    const r = afterFailure(policy, 1, { permanent: false, retryAfterMs: 30_000 }, NOW);
    expect(r).toEqual({ result: 'retry', nextAttemptAt: new Date(NOW.getTime() + 30_000) });
  });

  it('keeps the backoff when Retry-After is shorter (a receiver cannot make Herald hammer it)', () => {
    const r = afterFailure(policy, 3, { permanent: false, retryAfterMs: 0 }, NOW);
    if (r.result !== 'retry') throw new Error(`expected a retry, got ${r.result}`);
    expect(r.nextAttemptAt.getTime() - NOW.getTime()).toBeGreaterThanOrEqual(2_000);
  });

  it('caps Retry-After at maxDelayMs', () => {
    const r = afterFailure(policy, 1, { permanent: false, retryAfterMs: 24 * 3_600_000 }, NOW);
    expect(r).toEqual({ result: 'retry', nextAttemptAt: new Date(NOW.getTime() + policy.maxDelayMs) });
  });

  it('still declares dead on the last attempt even with a Retry-After', () => {
    expect(afterFailure(policy, policy.maxAttempts, { permanent: false, retryAfterMs: 1_000 }, NOW)).toEqual({
      result: 'dead',
    });
  });
});
