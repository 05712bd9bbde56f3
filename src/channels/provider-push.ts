/**
 * The `push` channel: a delivery goes to every device of its user, each through the PushSender of
 * its provider (webpush, fcm, apns); a device whose provider has no configured sender is skipped.
 * Devices are read through the DeviceStore when the delivery is sent, not by the take statement.
 *
 * The delivery's outcome, from the devices' outcomes:
 * - `sent` when at least one device accepted; the detail lists every device's result and counts.
 *   Devices that failed beside it are not retried (the delivery is done): their failures are in the
 *   detail, not in a retry.
 * - transient (retried) when none accepted and at least one failure was transient. As a retry only
 *   happens when no device accepted, a retry never repeats a push a service accepted; the worker's
 *   own crash window (a send made, its outcome not recorded) can repeat the whole fan-out, so a
 *   push is at-least-once per device. The payload carries the notification id, by which a service
 *   worker or app can drop a repeat.
 * - permanent (failed) when every device failed permanently or was dead.
 * - skipped when the user has no device, or none whose provider has a sender.
 *
 * A permanent failure with reason `token_dead` runs the `token_dead` hook (by default: remove that
 * device, DeviceStore.removeDevice) before the outcome is recorded, so it is never used again; the
 * removal is in the delivery's timeline: `removedDevices` in a `sent` event's detail, and named in
 * the error of a failed or retried attempt. Devices that
 * accepted are touched (`lastUsedAt`). Sends to a user's devices run concurrently.
 *
 * Store round trips are shared between concurrent deliveries (a lane sends up to its concurrency
 * at once): the device reads of deliveries that start together are one `listDevicesOfUsers`
 * statement, and the touches of deliveries that finish together one `touchDevices` statement
 * (group commit: a delivery's outcome is still returned only after its own touch is written). With
 * a read and a write per push, each its own statement, the store's round trips were most of the
 * cost of a push (`npm run bench -- channels`, docs/benchmarks.md).
 */
import type { Device, DeviceProvider } from '../core/devices.ts';
import { GroupCommit } from '../core/group-commit.ts';
import type { DeviceStore } from '../core/ports.ts';
import type { ChannelProvider, PermanentReason, SendResult } from '../core/ports-channels.ts';
import type { DeliveryJob } from '../core/types.ts';
import type { PushMessage, PushOutcome, PushSender } from './push-sender.ts';

export interface PushProviderOptions {
  /** The configured senders, by device provider; at least one. */
  senders: ReadonlyMap<DeviceProvider, PushSender>;
  devices: Pick<DeviceStore, 'listDevices' | 'removeDevice' | 'touchDevices'> &
    Partial<Pick<DeviceStore, 'listDevicesOfUsers'>>;
  /**
   * What to do about a device whose sender failed it permanently with a reason, before the outcome is
   * recorded. Default for `token_dead`: remove the device (DeviceStore.removeDevice), so that no later
   * delivery uses it.
   */
  onPermanent?: Partial<Record<PermanentReason, (device: Device, error: string) => Promise<void>>>;
}

/** Most users read, and most devices touched, in one statement. */
const STORE_BATCH = 256;

type DeviceResult =
  | { id: string; provider: DeviceProvider; result: 'accepted' }
  | { id: string; provider: DeviceProvider; result: 'dead'; reason: string }
  | { id: string; provider: DeviceProvider; result: 'transient' | 'permanent'; error: string; retryAfterMs?: number };

export class PushProvider implements ChannelProvider {
  readonly channel = 'push' as const;
  readonly name = 'push';
  /** Device reads of deliveries that start together, as one statement (when the store can). */
  private readonly reads: GroupCommit<string, Device[]> | null;
  /** Touches of deliveries that finish together, as one statement. */
  private readonly touches: GroupCommit<readonly string[], undefined>;

  constructor(private readonly options: PushProviderOptions) {
    const { devices } = options;
    const many = devices.listDevicesOfUsers?.bind(devices);
    // Bounded by the lanes' concurrency (one item per delivery in flight); maxPending is a backstop.
    const limits = { maxBatch: STORE_BATCH, maxPending: 100_000 };
    this.reads = many
      ? new GroupCommit(
          async (userIds: string[]) => {
            const found = await many(userIds);
            return userIds.map((u) => found.get(u) ?? []);
          },
          { ...limits, parallel: 2 },
        )
      : null;
    this.touches = new GroupCommit(
      async (batches: (readonly string[])[]) => {
        await devices.touchDevices(batches.flat());
        return batches.map(() => undefined);
      },
      { ...limits, parallel: 1, weight: (ids) => ids.length, maxWeight: STORE_BATCH },
    );
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    const all = await (this.reads ? this.reads.submit(job.userId) : this.options.devices.listDevices(job.userId));
    if (all.length === 0) return { ok: false, skipped: `user ${job.userId} has no push device` };
    const usable = all.filter((d) => this.options.senders.has(d.provider));
    if (usable.length === 0) {
      const providers = [...new Set(all.map((d) => d.provider))].join(', ');
      return {
        ok: false,
        skipped: `user ${job.userId} has no push device with a configured provider (has ${providers})`,
      };
    }
    const message = pushMessage(job);
    const results = await Promise.all(usable.map((d) => this.sendOne(d, message)));

    const dead = results.filter((r) => r.result === 'dead');
    const removedDevices: { id: string; provider: DeviceProvider; reason: string }[] = [];
    const onDead = this.options.onPermanent?.token_dead ?? ((d: Device) => this.options.devices.removeDevice(d.id));
    for (const r of dead) {
      // Acted on before the outcome is recorded: a later delivery cannot pick the device up again.
      await onDead(usable.find((d) => d.id === r.id) as Device, r.reason);
      removedDevices.push({ id: r.id, provider: r.provider, reason: r.reason });
    }
    const accepted = results.filter((r) => r.result === 'accepted').map((r) => r.id);
    if (accepted.length > 0) await this.touches.submit(accepted);

    const counts = {
      devices: usable.length,
      accepted: accepted.length,
      failed: results.length - accepted.length - dead.length,
      removed: dead.length,
      skipped: all.length - usable.length,
    };
    if (accepted.length > 0) {
      return {
        ok: true,
        detail: {
          provider: 'push',
          ...counts,
          results: results.map(shownResult),
          ...(removedDevices.length ? { removedDevices } : {}),
        },
      };
    }
    const transient = results.filter((r) => r.result === 'transient');
    const error = failureText(results, removedDevices);
    if (transient.length > 0) {
      const waits = transient
        .map((r) => ('retryAfterMs' in r ? r.retryAfterMs : undefined))
        .filter((ms): ms is number => ms !== undefined);
      return {
        ok: false,
        permanent: false,
        error,
        ...(waits.length ? { retryAfterMs: Math.max(...waits) } : {}),
      };
    }
    return { ok: false, permanent: true, error };
  }

  async close(): Promise<void> {
    await Promise.all([this.reads?.drain(), this.touches.drain()]);
    await Promise.all([...this.options.senders.values()].map((s) => s.close?.()));
  }

  private async sendOne(device: Device, message: PushMessage): Promise<DeviceResult> {
    const sender = this.options.senders.get(device.provider) as PushSender;
    let o: PushOutcome;
    try {
      o = await sender.send(device, message);
    } catch (e) {
      // A sender promises not to throw; if one does, the failure is treated as transient.
      o = { ok: false, permanent: false, error: `sender error: ${e instanceof Error ? e.message : String(e)}` };
    }
    const base = { id: device.id, provider: device.provider };
    if (o.ok) return { ...base, result: 'accepted' };
    if (o.reason === 'token_dead') return { ...base, result: 'dead', reason: o.error };
    return {
      ...base,
      result: o.permanent ? 'permanent' : 'transient',
      error: o.error,
      ...(o.retryAfterMs !== undefined ? { retryAfterMs: o.retryAfterMs } : {}),
    };
  }
}

/** What a push carries: the delivery's content (rendered `push.title`/`push.body` with a template). */
export function pushMessage(job: DeliveryJob): PushMessage {
  const n = job.notification;
  const text = job.content?.push ?? job.content ?? n;
  const data = n.data && typeof n.data === 'object' && !Array.isArray(n.data) ? n.data : null;
  return {
    notificationId: n.id,
    deliveryId: job.deliveryId,
    category: n.category,
    priority: job.lane,
    title: text.title,
    body: text.body,
    data,
  };
}

function shownResult(r: DeviceResult): Record<string, string> {
  if (r.result === 'accepted') return { id: r.id, provider: r.provider, result: r.result };
  if (r.result === 'dead') return { id: r.id, provider: r.provider, result: r.result, reason: r.reason };
  return { id: r.id, provider: r.provider, result: r.result, error: r.error };
}

/** `no push device accepted (2 tried): d1 (webpush) transient: …; removed dead devices: d2 (webpush): …`. */
function failureText(results: DeviceResult[], removed: { id: string; provider: string; reason: string }[]): string {
  const failures = results
    .filter((r) => r.result === 'transient' || r.result === 'permanent')
    .map((r) => `${r.id} (${r.provider}) ${r.result}: ${'error' in r ? r.error : ''}`);
  const parts = [...failures];
  if (removed.length) {
    parts.push(`removed dead devices: ${removed.map((d) => `${d.id} (${d.provider}): ${d.reason}`).join(', ')}`);
  }
  return `no push device accepted (${results.length} tried): ${parts.join('; ')}`.slice(0, 2000);
}
