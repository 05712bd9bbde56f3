/**
 * The decider's send-time gates (ADR 13; SendGate, src/core/dispatch.ts): what cannot be decided at
 * ingest because it depends on when the delivery is actually sent.
 *
 * - ExpiryGate: a delivery taken at or after its notification's `expires_at` (a retry, a backlog) is
 *   skipped `expired`. The expiries of deliveries checked together are one read; a notification's
 *   expiry never changes, so it is kept (bounded) and read once per process.
 * - CapGate: a category's cap on the delivery's channel (`caps.<channel>: {max, per, overflow}`) is
 *   counted per user × channel × category in fixed windows of `per` aligned to the epoch, atomically
 *   in the store, at the delivery's first attempt (a retry is not counted again). Over the cap: skipped
 *   `capped` (`overflow: "drop"`), or moved into the user's digest of the current window, `pending`
 *   with reason `digested` (`overflow: "digest"`; `capped` if that digest was already taken).
 */
import { digestWindow } from './digest-window.ts';
import type { SendGate } from './dispatch.ts';
import { GroupCommit } from './group-commit.ts';
import type { Clock, DecisionStore } from './ports.ts';
import type { SendResult } from './ports-channels.ts';
import type { CategoryPolicy, DeliveryJob } from './types.ts';

const SYSTEM_CLOCK: Clock = { now: () => new Date() };

export class ExpiryGate implements SendGate {
  readonly name = 'expiry';
  private readonly reads: GroupCommit<string, Date | null>;
  /** Expiries read, in two generations (a full young one replaces the old one whole: O(1) eviction). */
  private young = new Map<string, Date | null>();
  private old = new Map<string, Date | null>();

  constructor(
    store: Pick<DecisionStore, 'getExpiries'>,
    private readonly clock: Clock = SYSTEM_CLOCK,
    private readonly maxEntries = 100_000,
  ) {
    this.reads = new GroupCommit(
      async (ids: string[]) => {
        const found = await store.getExpiries(ids);
        return ids.map((id) => found.get(id) ?? null);
      },
      { maxBatch: 256, maxPending: 100_000, parallel: 2 },
    );
  }

  async check(job: DeliveryJob): Promise<SendResult | null> {
    const id = job.notification.id;
    let expiresAt = this.young.get(id) ?? this.old.get(id);
    if (expiresAt === undefined) {
      expiresAt = await this.reads.submit(id);
      if (this.young.size >= this.maxEntries / 2) {
        this.old = this.young;
        this.young = new Map();
      }
      this.young.set(id, expiresAt);
    }
    if (!expiresAt || this.clock.now().getTime() < expiresAt.getTime()) return null;
    return { ok: false, skipped: `the notification expired at ${expiresAt.toISOString()}`, reason: 'expired' };
  }
}

export class CapGate implements SendGate {
  readonly name = 'caps';

  constructor(
    private readonly policies: { policyOf(category: string): CategoryPolicy | null | Promise<CategoryPolicy | null> },
    private readonly store: Pick<DecisionStore, 'countSend' | 'digestOverflow'>,
    private readonly clock: Clock = SYSTEM_CLOCK,
  ) {}

  async check(job: DeliveryJob): Promise<SendResult | null> {
    if (job.attempt > 1) return null;
    const { category } = job.notification;
    let policy = this.policies.policyOf(category);
    if (policy instanceof Promise) policy = await policy;
    const cap = policy?.caps[job.channel];
    if (!cap) return null;
    const now = this.clock.now();
    const start = Math.floor(now.getTime() / cap.perMs) * cap.perMs;
    const fits = await this.store.countSend(
      {
        userId: job.userId,
        channel: job.channel,
        category,
        windowStart: new Date(start),
        windowEnd: new Date(start + cap.perMs),
      },
      cap.max,
    );
    if (fits) return null;
    if (cap.overflow === 'digest' && policy?.digest) {
      const window = digestWindow(policy.digest, job.user?.timezone ?? null, now);
      // Moved into the digest here, lease and all: the worker's own record of this result then finds
      // the lease gone and writes nothing.
      if (await this.store.digestOverflow({ id: job.deliveryId, leaseToken: job.leaseToken }, window)) {
        return {
          ok: false,
          skipped: `over the cap of ${category} on ${job.channel}: joins the digest ending ${window.windowEnd.toISOString()}`,
          reason: 'digested',
        };
      }
    }
    return {
      ok: false,
      skipped: `user ${job.userId} already got ${cap.max} of ${category} on ${job.channel} in this ${cap.per}`,
      reason: 'capped',
    };
  }
}
