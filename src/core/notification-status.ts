/** A notification's status, derived from the states of its deliveries (never stored twice). */
import type { DeliveryState, NotificationStatus, NotificationView } from './types.ts';

export function notificationStatus(
  v: Pick<NotificationView, 'stateCounts' | 'started' | 'cancelledAt' | 'sendAt'>,
  now: Date,
): NotificationStatus {
  if (v.cancelledAt) return 'cancelled';
  const n = (s: DeliveryState) => v.stateCounts[s] ?? 0;
  const active = n('pending') + n('processing');
  const bad = n('failed') + n('dead');
  const good = n('sent') + n('delivered') + n('read') + n('skipped');
  if (active > 0) {
    if (v.started > 0 || n('processing') > 0 || good + bad > 0) return 'processing';
    return v.sendAt && v.sendAt > now ? 'scheduled' : 'accepted';
  }
  if (bad === 0) return 'done';
  return good === 0 ? 'failed' : 'partially_failed';
}
