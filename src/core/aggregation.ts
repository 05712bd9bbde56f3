/**
 * Aggregation by groupKey (API.md Part 2, "Digests and aggregation"; docs/realtime.md
 * "Aggregated notifications"): a user's in-app notifications with the same groupKey within a window
 * become one inbox item with `count` and `latest`. The store does the merge, atomically with the
 * seq (migration 0014); this module only says how long a group's window is.
 *
 * The window is fixed when an item opens (its first notification reaches the inbox) and lasts
 * `groupWindowMs` of the category: the category policy's `digest.window` where it has one, else one
 * hour. A notification reaching the inbox after the window has ended opens a new item.
 */
import type { InboxItem, InboxLatest } from './types.ts';

/** The window of a group when its category says nothing: one hour. */
export const DEFAULT_GROUP_WINDOW_MS = 3_600_000;

/**
 * Looks up a category's group window in milliseconds, or undefined for the default: src/herald.ts
 * wires the category policy's `digest.window` here (through the policy cache: a promise only when
 * the policy is not cached).
 */
export type GroupWindowLookup = (category: string) => number | undefined | Promise<number | undefined>;

/** The window, in milliseconds, of a group of `category`: the lookup's, else one hour. */
export async function groupWindowMs(category: string, lookup?: GroupWindowLookup): Promise<number> {
  const ms = await lookup?.(category);
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? ms : DEFAULT_GROUP_WINDOW_MS;
}

/** The `latest` of an aggregated item: the fields of the notification it shows. */
export function latestOf(item: Omit<InboxItem, 'seq' | 'readAt'>): InboxLatest {
  return {
    id: item.id,
    category: item.category,
    priority: item.priority,
    title: item.title,
    body: item.body,
    data: item.data,
    createdAt: item.createdAt,
  };
}
