/**
 * The preferences gate (a SendGate, src/core/dispatch.ts): a delivery the user opted out of
 * (src/core/preferences.ts: category × channel) ends `skipped` with reason `opted_out`, unsent.
 *
 * Costs one store read per gated delivery (issue 13 adds a cache for large fan-outs), and none for
 * `in_app`, which is not gated yet: in-app deliveries completed in SQL by the take never meet a gate
 * (issue 13 decides in-app opt-outs there). A category `isRequired` says is required passes whatever
 * the user chose (no category is required until issue 13's category policies).
 */
import type { SendGate } from './dispatch.ts';
import type { PreferenceStore, SendResult } from './ports.ts';
import { type IsRequired, NOTHING_REQUIRED, optedOut } from './preferences.ts';
import type { DeliveryJob } from './types.ts';

export class PreferenceGate implements SendGate {
  readonly name = 'preferences';

  constructor(
    private readonly store: Pick<PreferenceStore, 'getPreferences'>,
    private readonly isRequired: IsRequired = NOTHING_REQUIRED,
  ) {}

  async check(job: DeliveryJob): Promise<SendResult | null> {
    if (job.channel === 'in_app') return null;
    const { category } = job.notification;
    if (await this.isRequired(category)) return null;
    const prefs = await this.store.getPreferences(job.userId);
    if (!prefs || !optedOut(prefs, category, job.channel)) return null;
    return {
      ok: false,
      skipped: `user ${job.userId} opted out of ${category} on ${job.channel}`,
      reason: 'opted_out',
    };
  }
}
