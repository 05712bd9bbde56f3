/**
 * Exponential backoff with full jitter: attempt n (1-based, the one that just failed) waits a
 * random time in [base·2^(n-1)/2, base·2^(n-1)], capped at `maxDelayMs`. Half of the window is
 * fixed so that a retry never comes immediately; the other half spreads a retry storm.
 */
export interface RetryPolicy {
  baseMs: number;
  maxAttempts: number;
  maxDelayMs: number;
}

export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** What to do after a failed attempt. */
export function afterFailure(
  policy: RetryPolicy,
  attempt: number,
  failure: { permanent: boolean; retryAfterMs?: number },
  now: Date,
): { result: 'failed' } | { result: 'dead' } | { result: 'retry'; nextAttemptAt: Date } {
  if (failure.permanent) return { result: 'failed' };
  if (attempt >= policy.maxAttempts) return { result: 'dead' };
  const wait = Math.max(backoffMs(policy, attempt), Math.min(failure.retryAfterMs ?? 0, policy.maxDelayMs));
  return { result: 'retry', nextAttemptAt: new Date(now.getTime() + wait) };
}
