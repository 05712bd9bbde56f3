/**
 * The real-time wire protocol of docs/realtime.md, as constants and builders shared by the session
 * (src/core/realtime-session.ts), the gateway and the tests: close codes, the limits on what a
 * client may send, and the notification frame.
 */
import type { InboxItem } from './types.ts';

export const CLOSE = {
  normal: 1000,
  /** Sent by the WebSocket library itself, for a text frame that is not UTF-8. */
  invalidUtf8: 1007,
  /** Ten malformed frames, or too many frames (reasons tell which). */
  policy: 1008,
  tooLarge: 1009,
  restart: 1012,
  unauthorized: 4401,
  slowConsumer: 4408,
} as const;

/** The budget of client frames per connection (see src/core/realtime-session.ts). */
export const CLIENT_FRAMES = {
  burst: 2000,
  perSecond: 100,
  perNotification: 2,
  /** Earned frames beyond this are not kept. */
  maxEarned: 100_000,
} as const;
/** Read seqs one connection may have waiting to be written. */
export const MAX_PENDING_READS = 1000;
/** Client frames kept while `ready` is not yet sent. */
export const MAX_EARLY_FRAMES = 64;

/** A live or replayed notification, serialized once for every socket of its user; an aggregated one with count, latest and replaces. */
export function notificationFrame(item: InboxItem): Buffer {
  return Buffer.from(
    JSON.stringify({
      type: 'notification',
      seq: item.seq,
      id: item.id,
      category: item.category,
      priority: item.priority,
      title: item.title,
      body: item.body,
      data: item.data,
      createdAt: item.createdAt,
      readAt: item.readAt,
      // An aggregated item (src/core/aggregation.ts); undefined fields are left out.
      count: item.count,
      latest: item.latest,
      replaces: item.replaces,
    }),
  );
}
