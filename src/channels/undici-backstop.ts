/**
 * undici's headers and body timeouts run on its coarse timers (1 s resolution, ticking about every
 * 0.5 s), which may fire up to half a second early: an 800 ms bound can cut off an answer at 550 ms.
 * So a provider's own bound — a native timer or `AbortSignal.timeout` — is what ends a request, and
 * undici's timeouts are set this much later, as a backstop only.
 */
export function undiciBackstopMs(timeoutMs: number): number {
  return timeoutMs + 1000;
}
