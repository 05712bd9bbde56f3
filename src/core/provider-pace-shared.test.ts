/**
 * SharedPace on one in-process limiter standing in for a shared one (the Redis limiter's own tests
 * and test/provider-pace-redis.integration.test.ts cover the real thing). Real time: the pace sleeps.
 */
import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from '../ratelimit/rate-limiter-memory.ts';
import type { RateLimitDecision, RateLimiter } from './ports-channels.ts';
import { SharedPace } from './provider-pace-shared.ts';

/** The most of `sorted` (ms) in any window [a, b], beyond perSecond × (b − a) + burst. */
function worstExcess(sorted: number[], perSecond: number, burst: number): number {
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < sorted.length; i++)
    for (let j = i; j < sorted.length; j++) {
      const span = (sorted[j] as number) - (sorted[i] as number);
      worst = Math.max(worst, j - i + 1 - (perSecond * span) / 1000 - burst);
    }
  return worst;
}

/** A limiter that counts the takes it is asked for. */
function counting(inner: RateLimiter): RateLimiter & { asked: () => number } {
  let asked = 0;
  return {
    kind: 'counting',
    take: (key, now) => {
      asked++;
      return inner.take(key, now);
    },
    close: () => inner.close(),
    asked: () => asked,
  };
}

describe('SharedPace', () => {
  it('two processes pacing on one limiter together start at most perSecond × t + burst sends', async () => {
    const pace = { perSecond: 100, burst: 5 };
    const limiter = new MemoryRateLimiter({ rps: pace.perSecond, burst: pace.burst });
    const workers = [new SharedPace(pace, limiter, 'provider:sms'), new SharedPace(pace, limiter, 'provider:sms')];
    const started: number[] = [];
    const until = performance.now() + 1000;
    // Eight send slots per process, each sending again as soon as it may.
    await Promise.all(
      workers.flatMap((w) =>
        Array.from({ length: 8 }, async () => {
          while (performance.now() < until) if (await w.take(1000)) started.push(performance.now());
        }),
      ),
    );
    started.sort((a, b) => a - b);
    // The times are taken just after each token, a little late and not by the same amount: one send of slack.
    expect(worstExcess(started, pace.perSecond, pace.burst)).toBeLessThanOrEqual(1);
    // Paced, not starved: close to 100 a second plus the burst.
    expect(started.length).toBeGreaterThan(90);
  });

  it('sends waiting in one process ask the limiter about once per token, and start in the order they came', async () => {
    const limiter = counting(new MemoryRateLimiter({ rps: 200, burst: 1 }));
    const pace = new SharedPace({ perSecond: 200, burst: 1 }, limiter, 'provider:email');
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        if (await pace.take(5_000)) order.push(i);
      }),
    );
    expect(order).toEqual(Array.from({ length: 30 }, (_, i) => i));
    // 30 tokens at 5 ms each; a timer may wake a little early, so a few asks are refused. Thirty
    // sends each polling would ask hundreds of times.
    expect(limiter.asked()).toBeLessThan(30 * 3);
  });

  it('gives up at once, consuming nothing, when its turn cannot come within its wait', async () => {
    const limiter = counting(new MemoryRateLimiter({ rps: 10, burst: 1 }));
    const pace = new SharedPace({ perSecond: 10, burst: 1 }, limiter, 'provider:email');
    expect(await pace.take(0)).toBe(true);
    // The next token is 100 ms away.
    const started = performance.now();
    expect(await pace.take(50)).toBe(false);
    expect(performance.now() - started).toBeLessThan(20);
    expect(pace.waitFor()).toBeGreaterThan(50);
    // Known to be ~100 ms out: the next one with a short wait gives up without asking.
    const asked = limiter.asked();
    expect(await pace.take(20)).toBe(false);
    expect(limiter.asked()).toBe(asked);
    // And nothing was consumed: a send that waits long enough gets the token when it is due.
    expect(await pace.take(200)).toBe(true);
    expect(performance.now() - started).toBeLessThan(150);
  });

  it('waits whole seconds with a limiter that gives no retryAfterMs (one written before the field)', async () => {
    const inner = new MemoryRateLimiter({ rps: 1, burst: 1 });
    const legacy: RateLimiter = {
      kind: 'legacy',
      take: async (key, now) => {
        const { retryAfterMs: _, ...d }: RateLimitDecision = await inner.take(key, now);
        return d;
      },
      close: async () => {},
    };
    const pace = new SharedPace({ perSecond: 1, burst: 1 }, legacy, 'provider:x');
    expect(await pace.take(0)).toBe(true);
    expect(await pace.take(500)).toBe(false);
    expect(pace.waitFor()).toBeGreaterThan(900);
  });
});
