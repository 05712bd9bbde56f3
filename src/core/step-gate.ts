/**
 * The escalation step's condition (API.md Part 2: `{"channel": "email", "after": "PT10M",
 * "unless": "read"}`), checked when the delivery is about to be sent — on every attempt, so a retry
 * after the user read the in-app notification is not sent either.
 *
 * - `unless: "read"`: skipped (`reason: "read"`) when the same notification's in-app delivery to the
 *   same user is `read`.
 * - `unless: "delivered"`: skipped when it is `delivered` or `read` (`reason` is that state).
 * - No in-app delivery for that user in that notification (in_app was not asked for): sent.
 *
 * A job without `unless` costs nothing: no read. The check and the send are not atomic: a read that
 * lands between them does not stop a send already under way.
 */
import type { SendGate } from './dispatch.ts';
import type { DeliveryStore } from './ports.ts';
import type { SendResult } from './ports-channels.ts';
import type { DeliveryJob, DeliveryState, StepCondition } from './types.ts';

/** The states of the in-app delivery that stop a step with each condition. */
const STOPPED_BY: Record<StepCondition, ReadonlySet<DeliveryState>> = {
  read: new Set(['read']),
  delivered: new Set(['delivered', 'read']),
};

export class StepConditionGate implements SendGate {
  readonly name = 'step-condition';

  constructor(private readonly store: Pick<DeliveryStore, 'siblingInAppState'>) {}

  async check(job: DeliveryJob): Promise<SendResult | null> {
    if (!job.unless) return null;
    const state = await this.store.siblingInAppState({
      id: job.deliveryId,
      notificationId: job.notification.id,
      userId: job.userId,
    });
    if (state === null || !STOPPED_BY[job.unless].has(state)) return null;
    const reason = state as 'read' | 'delivered';
    return {
      ok: false,
      skipped: `the in-app notification was ${reason} before this step was due (unless: ${job.unless})`,
      reason,
    };
  }
}
