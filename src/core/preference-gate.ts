/**
 * The preferences gate (a SendGate, src/core/dispatch.ts): a delivery the user opted out of
 * (src/core/preferences.ts: category × channel) ends `skipped` with reason `opted_out`, unsent.
 *
 * The decider (ADR 13) already skipped, at acceptance, what the user had opted out of then; this
 * gate catches opt-outs made while a delivery waited (retries, quiet hours). The reads of deliveries
 * checked together (a worker's concurrent sends) are one statement (`getPreferencesOfUsers`), so a
 * gated delivery costs a share of a read, never a stale answer; none for `in_app`, decided once at
 * acceptance. A category `isRequired` says is required (its policy) passes whatever the user chose.
 */
import type { SendGate } from './dispatch.ts';
import { GroupCommit } from './group-commit.ts';
import type { PreferenceStore } from './ports.ts';
import type { SendResult } from './ports-channels.ts';
import type { Preferences } from './preferences.ts';
import { type IsRequired, NOTHING_REQUIRED, optedOut } from './preferences.ts';
import type { DeliveryJob } from './types.ts';

export class PreferenceGate implements SendGate {
  readonly name = 'preferences';

  /** Reads of deliveries checked together, as one statement. */
  private readonly reads: GroupCommit<string, Preferences | null>;

  constructor(
    store: Pick<PreferenceStore, 'getPreferencesOfUsers'>,
    private readonly isRequired: IsRequired = NOTHING_REQUIRED,
  ) {
    // Bounded by the lanes' concurrency (one item per delivery in flight); maxPending is a backstop.
    this.reads = new GroupCommit(
      async (userIds: string[]) => {
        const found = await store.getPreferencesOfUsers(userIds);
        return userIds.map((u) => found.get(u) ?? null);
      },
      { maxBatch: 256, maxPending: 100_000, parallel: 2 },
    );
  }

  async check(job: DeliveryJob): Promise<SendResult | null> {
    if (job.channel === 'in_app') return null;
    const { category } = job.notification;
    if (await this.isRequired(category)) return null;
    const prefs = await this.reads.submit(job.userId);
    if (!prefs || !optedOut(prefs, category, job.channel)) return null;
    return {
      ok: false,
      skipped: `user ${job.userId} opted out of ${category} on ${job.channel}`,
      reason: 'opted_out',
    };
  }
}
