/**
 * One push service (Web Push, FCM, APNs) as the `push` channel sees it: send one message to one
 * device. The `push` channel provider fans a delivery out to every device of its user and hands
 * each device to the sender of its provider (webpush, fcm, apns).
 *
 * A sender promises: it never throws (every failure is an outcome); reason `token_dead` means the push
 * service said this device token will never work again (Web Push 404/410, FCM UNREGISTERED, APNs 410 or
 * BadDeviceToken) — the caller removes the device at once and never uses it again; other failures
 * are `permanent` (the message itself is refused: retrying cannot help) or transient (retry, after
 * `retryAfterMs` when the service said so). Operator-configured service URLs (FCM, APNs) are trusted;
 * Web Push endpoints are chosen by browsers and go through the egress-guarded client.
 */
import type { Device, DeviceProvider } from '../core/devices.ts';
import type { PermanentReason } from '../core/ports-channels.ts';
import type { Lane } from '../core/types.ts';

/** What a push carries (the delivery's rendered content). */
export interface PushMessage {
  notificationId: string;
  deliveryId: string;
  category: string;
  priority: Lane;
  title: string | null;
  body: string | null;
  data: Record<string, unknown> | null;
}

/**
 * A failure, transient or permanent. `reason` classifies a permanent one for the channel to act on:
 * `token_dead` — the service said this device token will never work again (the push channel's hook
 * removes the device).
 */
export type PushOutcome =
  | { ok: true; detail?: Record<string, unknown> }
  | { ok: false; permanent: boolean; error: string; retryAfterMs?: number; reason?: PermanentReason };

export interface PushSender {
  readonly provider: DeviceProvider;
  send(device: Device, message: PushMessage): Promise<PushOutcome>;
  close?(): Promise<void>;
}
