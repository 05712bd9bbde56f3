/**
 * Digest windows (API.md Part 2, "Digests and aggregation"): which window a notification accepted
 * at `now` falls into, for a category's `digest` setting and the user's time zone.
 *
 * - `{"window": "PT1H"}`: fixed windows of that length, aligned to the Unix epoch (hourly windows
 *   start on the hour, in every zone whose offset is whole hours). Fixed, so that every process
 *   computes the same window — the digest's unique key — without reading anything.
 * - `{"cron": "0 9 * * *"}`: from one cron time to the next, in the user's time zone (UTC when the
 *   user has none, or an unknown one); cron-parser with luxon-backed dates, so a daily 09:00 is 09:00
 *   local on both sides of a DST change, and a time that occurs twice (01:30 on the night clocks go
 *   back) fires once.
 *
 * The window is [windowStart, windowEnd): a notification accepted exactly at a cron time belongs to
 * the window that starts there.
 */
import { CronExpressionParser } from 'cron-parser';
import type { CategoryPolicy } from './types.ts';

export interface DigestWindow {
  windowStart: Date;
  windowEnd: Date;
}

export function digestWindow(
  digest: NonNullable<CategoryPolicy['digest']>,
  timezone: string | null,
  now: Date,
): DigestWindow {
  if ('windowMs' in digest) {
    const start = Math.floor(now.getTime() / digest.windowMs) * digest.windowMs;
    return { windowStart: new Date(start), windowEnd: new Date(start + digest.windowMs) };
  }
  const tz = timezone && isTimeZone(timezone) ? timezone : 'UTC';
  // cron-parser's next() is strictly after currentDate; prev() strictly before. So from 1 ms after
  // `now`, prev() is the latest cron time ≤ now, and next() the first one after it.
  const after = new Date(now.getTime() + 1);
  const windowEnd = CronExpressionParser.parse(digest.cron, { currentDate: after, tz }).next().toDate();
  const windowStart = CronExpressionParser.parse(digest.cron, { currentDate: after, tz }).prev().toDate();
  return { windowStart, windowEnd };
}

/** A cron expression's problem for people, or null when cron-parser accepts it (5 fields, no seconds). */
export function cronProblem(expression: string): string | null {
  if (expression.trim().split(/\s+/).length !== 5) {
    return 'must be a cron expression of 5 fields (minute hour day-of-month month day-of-week)';
  }
  try {
    CronExpressionParser.parse(expression, { strict: false });
    return null;
  } catch (e) {
    return `is not a valid cron expression: ${(e as Error).message}`;
  }
}

const zones = new Map<string, boolean>();

/** Whether `tz` is an IANA time zone this runtime knows (cached: checked per user per batch). */
export function isTimeZone(tz: string): boolean {
  let ok = zones.get(tz);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      ok = true;
    } catch {
      ok = false;
    }
    if (zones.size < 10_000) zones.set(tz, ok);
  }
  return ok;
}
