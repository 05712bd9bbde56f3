/**
 * A `Retry-After` header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as a delay in
 * milliseconds from now, never negative; nothing when the header is missing or unreadable.
 */
export function retryAfter(h: string | string[] | undefined): { retryAfterMs?: number } {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return {};
  const secs = Number(v);
  if (Number.isFinite(secs)) return { retryAfterMs: Math.max(0, secs * 1000) };
  const at = Date.parse(v);
  return Number.isNaN(at) ? {} : { retryAfterMs: Math.max(0, at - Date.now()) };
}
