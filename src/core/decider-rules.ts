/**
 * The decider's rules for one recipient × channel (API.md Part 2, docs/preferences.md), pure: no I/O,
 * "now" given. In this order, the first that applies decides:
 *
 * 1. `expired`: the delivery would be due at or after the notification's `expiresAt` (a step's
 *    `after` beyond the ttl) → skipped.
 * 2. `opted_out`: the user's preferences opt out of the category on the channel (preferences.ts's
 *    rule, every channel including `in_app`), unless the category is `required` → skipped.
 * 3. `digested`: the category has a `digest` → member of the user's digest of the window containing
 *    the due time (digest-window.ts, in the user's zone) — except on a channel the category caps with
 *    `overflow: "digest"`: that one is sent up to its cap, and only what overflows is digested.
 * 4. `quiet_hours`: the due time falls in the user's quiet hours, in their IANA zone (UTC if none or
 *    unknown), the notification is not `critical` and the category does not say `quietHours: false`
 *    → pending until the end of the quiet period in local wall time (across DST changes); skipped
 *    `expired` instead when that end is at or after `expiresAt`.
 * 5. `worker`: an in-app delivery that a send-time gate must see — its category caps `in_app`, or the
 *    notification has its own `ttl` — goes through a worker's lease instead of the SQL completion.
 * Otherwise nothing: sent now.
 */
import { DateTime } from 'luxon';
import { digestWindow, isTimeZone } from './digest-window.ts';
import type { DecisionContext } from './ports.ts';
import { optedOut, type Preferences } from './preferences.ts';
import type { CategoryPolicy, Channel, Decision, NewNotification } from './types.ts';

const EXPIRED: Decision = { kind: 'skip', reason: 'expired' };
const OPTED_OUT: Decision = { kind: 'skip', reason: 'opted_out' };
const WORKER: Decision = { kind: 'worker' };

export function decideOne(
  n: NewNotification,
  channel: Channel,
  dueAt: Date,
  context: DecisionContext | null,
  policy: CategoryPolicy | null,
): Decision | undefined {
  if (n.expiresAt && dueAt.getTime() >= n.expiresAt.getTime()) return EXPIRED;
  const prefs = context?.preferences;
  if (prefs && policy?.required !== true && optedOut(prefs, n.category, channel)) return OPTED_OUT;
  // A channel capped with overflow "digest" is sent up to its cap; only the overflow is digested (CapGate).
  if (policy?.digest && policy.caps[channel]?.overflow !== 'digest') {
    const w = digestWindow(policy.digest, context?.timezone ?? null, dueAt);
    return { kind: 'digest', windowStart: w.windowStart, windowEnd: w.windowEnd };
  }
  if (prefs?.quietHours && n.priority !== 'critical' && policy?.quietHours !== false) {
    const until = quietHoursEnd(prefs.quietHours, context?.timezone ?? null, dueAt);
    if (until) {
      return n.expiresAt && until.getTime() >= n.expiresAt.getTime()
        ? EXPIRED
        : { kind: 'defer', reason: 'quiet_hours', until };
    }
  }
  if (channel === 'in_app' && (policy?.caps.in_app || n.ttlMs)) return WORKER;
  return undefined;
}

/**
 * When the quiet hours that `at` falls in end, or null when `at` is outside them. `start`/`end` are
 * local wall times `HH:MM` in `timezone` (UTC if null or unknown); `end` before `start` spans
 * midnight. The end is the next local `end` after `at`, computed in wall time: on the night clocks go
 * back, 22:00–07:00 lasts ten hours, and on the night they go forward, eight.
 */
export function quietHoursEnd(
  quiet: NonNullable<Preferences['quietHours']>,
  timezone: string | null,
  at: Date,
): Date | null {
  const zone = timezone && isTimeZone(timezone) ? timezone : 'UTC';
  const local = DateTime.fromJSDate(at, { zone });
  const [sh, sm] = hhmm(quiet.start);
  const [eh, em] = hhmm(quiet.end);
  const now = local.hour * 60 + local.minute;
  const start = sh * 60 + sm;
  const end = eh * 60 + em;
  const quietNow = start < end ? now >= start && now < end : now >= start || now < end;
  if (!quietNow) return null;
  // The end today if still ahead, else tomorrow's (plus({days}) keeps the wall time across DST).
  let until = local.set({ hour: eh, minute: em, second: 0, millisecond: 0 });
  if (until <= local) until = until.plus({ days: 1 }).set({ hour: eh, minute: em });
  return until.toJSDate();
}

function hhmm(text: string): [number, number] {
  return [Number(text.slice(0, 2)), Number(text.slice(3, 5))];
}
