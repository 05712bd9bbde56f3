import { describe, expect, it } from 'vitest';
import { LogThrottle } from './log-throttle.ts';

function setup(intervalMs = 10_000) {
  let t = 1_000_000;
  const lines: { level: 'error' | 'warn'; obj: Record<string, unknown>; msg: string }[] = [];
  const sink = {
    error: (obj: object, msg: string) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
    warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
  };
  const throttle = new LogThrottle(sink, { intervalMs, now: () => t });
  return {
    throttle,
    lines,
    advance(ms: number) {
      t += ms;
    },
  };
}

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

describe('LogThrottle', () => {
  it('writes the first occurrence in full, then one summary per interval with the count left out', () => {
    const { throttle, lines, advance } = setup();
    // An outage: 4 lanes failing every 250 ms for 25 s (400 errors).
    for (let i = 0; i < 100; i++) {
      for (const lane of ['critical', 'high', 'normal', 'bulk']) {
        throttle.error({ err: refused(), lane }, 'claim failed; retrying after the poll interval');
      }
      advance(250);
      throttle.flush();
    }
    throttle.stop();
    expect(lines.length).toBeLessThanOrEqual(4);
    const [first, ...summaries] = lines;
    expect(first?.obj.err).toBeInstanceOf(Error);
    expect((first?.obj.err as Error | undefined)?.stack).toContain('connect ECONNREFUSED');
    expect(first?.msg).toBe('claim failed; retrying after the poll interval');
    for (const s of summaries) {
      expect(s.obj.err).toBeUndefined();
      expect(s.obj.lastError).toEqual({ message: 'connect ECONNREFUSED 127.0.0.1:5432', code: 'ECONNREFUSED' });
      expect(s.msg).toMatch(/^claim failed; retrying after the poll interval \(\d+ more in the last \d+ s/);
    }
    // Nothing is lost without being counted: written + counted = 400.
    const counted = summaries.reduce((n, s) => n + (s.obj.suppressed as number), 0);
    expect(1 + counted).toBe(400);
  });

  it('keeps kinds apart: another message, level or error code is written in full at once', () => {
    const { throttle, lines } = setup();
    throttle.error({ err: refused() }, 'claim failed');
    throttle.error({ err: refused() }, 'maintenance task failed');
    throttle.warn({ err: refused() }, 'claim failed');
    throttle.error({ err: Object.assign(new Error('timeout'), { code: '57014' }) }, 'claim failed');
    throttle.error({ err: refused() }, 'claim failed');
    expect(lines.map((l) => `${l.level} ${l.msg} ${(l.obj.err as { code: string }).code}`)).toEqual([
      'error claim failed ECONNREFUSED',
      'error maintenance task failed ECONNREFUSED',
      'warn claim failed ECONNREFUSED',
      'error claim failed 57014',
    ]);
  });

  it('writes no summary when nothing was left out, and forgets a kind after a quiet interval', () => {
    const { throttle, lines, advance } = setup(1000);
    throttle.error({ err: refused() }, 'request failed');
    advance(1500);
    throttle.flush();
    expect(lines).toHaveLength(1);
    // Quiet for a whole interval: the next one is a new incident, written in full.
    throttle.error({ err: refused() }, 'request failed');
    expect(lines).toHaveLength(2);
    expect(lines[1]?.obj.err).toBeInstanceOf(Error);
  });

  it('summarizes at the end of the interval even if no further error comes', () => {
    const { throttle, lines, advance } = setup(1000);
    throttle.error({ err: refused(), url: '/v1/notifications' }, 'request failed');
    throttle.error({ err: refused(), url: '/v1/notifications' }, 'request failed');
    throttle.error({ err: refused(), url: '/readyz' }, 'request failed');
    advance(999);
    throttle.flush();
    expect(lines).toHaveLength(1);
    advance(1);
    throttle.flush();
    expect(lines).toHaveLength(2);
    expect(lines[1]?.obj).toMatchObject({ suppressed: 2, url: '/readyz' });
    expect(lines[1]?.msg).toContain('2 more in the last 1 s');
  });

  it('stop() writes the summaries still owed', () => {
    const { throttle, lines } = setup();
    throttle.warn({ err: refused() }, 'real-time session failed to start');
    throttle.warn({ err: refused() }, 'real-time session failed to start');
    throttle.stop();
    expect(lines).toHaveLength(2);
    expect(lines[1]?.obj.suppressed).toBe(1);
  });
});
