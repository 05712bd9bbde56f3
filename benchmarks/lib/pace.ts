/** Open-loop pacing: calls at a steady rate, whatever the answers' latency (within a bound). */
import { performance } from 'node:perf_hooks';
import { sleep } from './stats.ts';

export interface PaceResult {
  /** Calls started (fewer than asked only when the deadline passed). */
  started: number;
  seconds: number;
  /** Largest delay of a call behind its schedule (ms): the sender could not keep up when large. */
  maxLagMs: number;
  /** Calls whose promise rejected (fn should rather count its own failures). */
  errors: number;
}

/**
 * Calls `fn(i)` for i = 0..count-1, the i-th at start + i/rate seconds; a call that is late goes
 * as soon as it can. At most `maxInFlight` calls are unsettled at once, and no call starts after
 * `deadlineMs`. Resolves when every started call has settled.
 */
export async function paced(
  count: number,
  rate: number,
  maxInFlight: number,
  deadlineMs: number,
  fn: (i: number) => Promise<void>,
): Promise<PaceResult> {
  const start = performance.now();
  const calls: Promise<void>[] = [];
  let inFlight = 0;
  let maxLagMs = 0;
  let errors = 0;
  let wake: (() => void) | null = null;
  let i = 0;
  for (; i < count; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait >= 1) await sleep(wait);
    while (inFlight >= maxInFlight) await new Promise<void>((r) => (wake = r));
    const now = performance.now();
    if (now - start > deadlineMs) break;
    maxLagMs = Math.max(maxLagMs, now - due);
    inFlight++;
    calls.push(
      fn(i)
        .catch(() => {
          errors++;
        })
        .finally(() => {
          inFlight--;
          const w = wake;
          wake = null;
          w?.();
        }),
    );
  }
  await Promise.all(calls);
  return { started: i, seconds: (performance.now() - start) / 1000, maxLagMs, errors };
}
