/**
 * The decider's decisions about one fan-out page, as herald_fanout_page takes them (migration 0018):
 * the offsets of the decided deliveries, left out of the page's fast write, and those deliveries as
 * herald_accept_decided (migration 0012) stores them — skipped, pending until the end of quiet hours,
 * in a digest, or (an in-app delivery a send-time gate must see) pending through a worker's lease.
 * Ids follow the page's scheme (prefix + start + offset in 12 hex digits), so that one subscriber's
 * deliveries keep consecutive ids whether decided or not.
 */
import { decisionKey, type NotificationDecisions } from '../core/decider.ts';
import type { FanoutJob, FanoutPlanEntry } from '../core/topics.ts';

export function decidedPage(
  job: FanoutJob,
  plan: readonly FanoutPlanEntry[],
  users: readonly string[],
  decisions: NotificationDecisions,
  prefix: string,
  start: number,
): { skip: number[]; rows: object[] } | null {
  const skip: number[] = [];
  const rows: object[] = [];
  const width = plan.length;
  for (const [i, user] of users.entries()) {
    for (const [o, p] of plan.entries()) {
      const decision = decisions.get(decisionKey(user, p.channel));
      if (!decision) continue;
      const offset = i * width + o;
      const row: Record<string, unknown> = {
        id: `${prefix}${(start + offset).toString(16).padStart(12, '0')}`,
        notification_id: job.notificationId,
        user_id: user,
        channel: p.channel,
        lane: job.lane,
        next_attempt_at: p.at,
        unless: p.unless,
        state: 'pending',
      };
      if (decision.kind === 'worker') {
        // Sent now, but only an in-app delivery changes: leased by a worker instead of completed in SQL.
        if (p.channel !== 'in_app') continue;
        row.via_worker = true;
      } else if (decision.kind === 'skip') {
        row.state = 'skipped';
        row.reason = decision.reason;
      } else if (decision.kind === 'defer') {
        row.reason = decision.reason;
        row.next_attempt_at = decision.until;
        // A deferred in-app delivery a worker must render is leased when due, not completed in SQL.
        if (p.viaWorker) row.via_worker = true;
      } else {
        row.reason = 'digested';
        row.window_start = decision.windowStart;
        row.window_end = decision.windowEnd;
      }
      skip.push(offset);
      rows.push(row);
    }
  }
  return rows.length ? { skip, rows } : null;
}
