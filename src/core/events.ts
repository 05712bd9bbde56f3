/** Typed events emitted by the core; metrics, logs and the real-time gateway subscribe to them. */
import { EventEmitter } from 'node:events';
import type { ProviderAttempt } from './provider-route.ts';
import type { Channel, InboxDelivery, InboxEntry, Lane } from './types.ts';

export interface DeliveryEvent {
  deliveryId: string;
  notificationId: string;
  userId: string;
  lane: Lane;
  channel: Channel;
  attempt: number;
  /** From the notification's creation (or sendAt) to the recorded outcome. */
  latencyMs: number;
  error?: string;
}

export interface HeraldEvents {
  /**
   * `fanout`: a topic notification, whose deliveries a fan-out job creates (src/core/fanout.ts);
   * `inAppOnRead`: its in-app channel is read through the subscription (every gateway is told).
   */
  'notification:accepted': [{ id: string; lane: Lane; deliveries: number; fanout?: boolean; inAppOnRead?: boolean }];
  /** One committed page of a fan-out job: how many subscribers it served. */
  'fanout:page': [{ notificationId: string; recipients: number }];
  /** One group commit: how many notifications shared it, and how long the store took. */
  'ingest:commit': [{ notifications: number; ms: number }];
  'delivery:sent': [DeliveryEvent];
  'delivery:retry': [DeliveryEvent];
  'delivery:failed': [DeliveryEvent];
  'delivery:dead': [DeliveryEvent];
  'delivery:skipped': [DeliveryEvent];
  /** Handed back unsent: its destination was busy (not an attempt; see src/core/destination-limit.ts). */
  'delivery:deferred': [DeliveryEvent];
  'delivery:reclaimed': [{ count: number }];
  /** In-app entries just committed (in seq order per user): the gateway pushes them to open sockets. */
  'inbox:entries': [readonly InboxEntry[]];
  /** A user's read state changed (HTTP or WebSocket); every open socket of the user is told. */
  'inbox:unread': [{ userId: string; unreadCount: number }];
  'worker:error': [{ lane: Lane; error: unknown }];
  /** What one provider of a route did with one delivery (sent, failed, passed over). */
  'provider:attempt': [ProviderAttempt];
  /** A WebSocket was accepted for a user. */
  'realtime:opened': [{ userId: string }];
  /** A WebSocket closed, with its close code (1006: dropped without a close frame). */
  'realtime:closed': [{ userId: string; code: number }];
  /** An upgrade to /v1/realtime was refused with this HTTP status. */
  'realtime:refused': [{ status: number }];
}

export class HeraldEmitter extends EventEmitter<HeraldEvents> {
  /** In-app deliveries just committed: their entries to the gateway (not the folded ones), and one `delivery:sent` each. */
  inboxDelivered(delivered: readonly InboxDelivery[]): void {
    if (!delivered.length) return;
    const entries = delivered.some((d) => d.folded) ? delivered.filter((d) => !d.folded) : delivered;
    if (entries.length) this.emit('inbox:entries', entries);
    const now = Date.now();
    for (const d of delivered) {
      this.emit('delivery:sent', {
        deliveryId: d.deliveryId,
        notificationId: d.item.id,
        userId: d.userId,
        lane: d.lane,
        channel: 'in_app',
        attempt: d.attempt,
        latencyMs: now - d.item.createdAt.getTime(),
      });
    }
  }
}
