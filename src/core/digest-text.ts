/**
 * What a digest says and how it travels: the job a digest is sent as (src/core/digest-runner.ts), and
 * its default text for categories without a template (docs/api.md, "Digests").
 *
 * Promises:
 * - The job's `deliveryId` and `notification.id` are the digest's id: the email `Message-ID`, the
 *   webhook's `webhook-id` and the push's delivery id, the same on every attempt and after a crash.
 * - Default text: title "3 new notifications" ("1 new notification"); body one line per shown item,
 *   newest first (its title, else its body), and "… and 47 more" when more were collected than shown.
 *   A template's fields replace these (its `digest.items`/`digest.count`); where the template has no
 *   text for a field, the default is what falls through, as a notification's own text does.
 * - The job carries the digest as `digest` (the template variable) and as `data.digest` (what a
 *   webhook or push receiver gets in `data`), with the members' highest priority (the push priority).
 */
import type { DigestWork } from './ports.ts';
import { type DeliveryJob, type DigestVariable, LANES, type Priority } from './types.ts';

/** Most members a digest shows (`digest.items`); `digest.count` is always the exact number. */
export const DIGEST_ITEMS = 50;

export function digestTitle(count: number): string {
  return count === 1 ? '1 new notification' : `${count} new notifications`;
}

export function digestBody(digest: Pick<DigestVariable, 'count' | 'items'>): string {
  const lines = digest.items.map((i) => i.title ?? i.body ?? '').filter((l) => l !== '');
  const more = digest.count - digest.items.length;
  if (more > 0) lines.push(`… and ${more} more`);
  return lines.join('\n');
}

export function digestVariable(work: DigestWork): DigestVariable {
  return {
    id: work.id,
    count: work.count,
    items: work.items,
    windowStart: work.windowStart.toISOString(),
    windowEnd: work.windowEnd.toISOString(),
  };
}

/** The most urgent priority among the shown items (lanes are listed most urgent first). */
function highest(work: DigestWork): Priority {
  const ranks = work.items.map((i) => LANES.indexOf(i.priority)).filter((r) => r >= 0);
  return LANES[ranks.length ? Math.min(...ranks) : LANES.indexOf('normal')] as Priority;
}

/** The job a digest is sent as, through the same dispatch (gates, template, route) as a delivery. */
export function digestJob(work: DigestWork): DeliveryJob {
  const digest = digestVariable(work);
  const priority = highest(work);
  return {
    deliveryId: work.id,
    leaseToken: work.leaseToken,
    attempt: work.attempt,
    channel: work.channel,
    lane: priority,
    userId: work.userId,
    notification: {
      id: work.id,
      category: work.category,
      priority,
      title: digestTitle(work.count),
      body: digestBody(digest),
      data: { digest },
      groupKey: null,
      createdAt: work.windowEnd,
    },
    user: work.user,
    digest,
  };
}
