/**
 * ISO 8601 durations, the strict subset Herald accepts: `P[nD][T[nH][nM][nS]]`, whole numbers
 * only (no fractions, no years, months or weeks: a month has no fixed length, and a delay is a
 * fixed number of milliseconds). Upper-case designators, at least one component, each at most
 * 9 digits. What a caller bounds the result to is the caller's to say (`maxMs`).
 */

const DURATION = /^P(?:(\d{1,9})D)?(?:T(?:(\d{1,9})H)?(?:(\d{1,9})M)?(?:(\d{1,9})S)?)?$/;

export type DurationParse = { ok: true; ms: number } | { ok: false; message: string };

/** Parses `text` (e.g. `PT10M`, `P1DT2H`) to milliseconds, refusing anything over `maxMs`. */
export function parseIsoDuration(text: string, maxMs: number): DurationParse {
  const m = DURATION.exec(text);
  // "P" and "P…T" with nothing after the T are not durations.
  if (!m || text === 'P' || text.endsWith('T')) {
    const hint = /[YW]|P\d+M|[.,]/.test(text)
      ? ' (years, months, weeks and fractions are not accepted; use days, hours, minutes and whole seconds)'
      : '';
    return { ok: false, message: `must be an ISO 8601 duration such as PT10M or P1DT2H${hint}` };
  }
  const [d, h, min, s] = [m[1], m[2], m[3], m[4]].map((x) => (x === undefined ? 0 : Number(x))) as [
    number,
    number,
    number,
    number,
  ];
  const ms = (((d * 24 + h) * 60 + min) * 60 + s) * 1000;
  if (ms > maxMs) return { ok: false, message: `must be at most ${formatIsoDuration(maxMs)}` };
  return { ok: true, ms };
}

/** Milliseconds (whole seconds) as the shortest duration of the accepted form: 90 000 → `PT1M30S`. */
export function formatIsoDuration(ms: number): string {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const min = Math.floor(s / 60);
  s -= min * 60;
  const time = `${h ? `${h}H` : ''}${min ? `${min}M` : ''}${s ? `${s}S` : ''}`;
  if (!d && !time) return 'PT0S';
  return `P${d ? `${d}D` : ''}${time ? `T${time}` : ''}`;
}
