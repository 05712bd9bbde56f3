/**
 * The Decider of ADR 13: category policies and recipients' preferences and time zones, through their
 * caches, and decider-rules.ts per recipient × channel.
 *
 * Promises:
 * - At most one store statement per batch (the recipients not cached; none when all are), and none
 *   for the policies once cached; never one per recipient.
 * - Fast path: `undefined`, after one cache lookup per recipient, when no recipient of the batch has
 *   preferences or a time zone and no notification's category or own ttl can decide anything.
 * - "Now" is the clock's (injectable for tests); a delivery's due time is the notification's
 *   `sendAt` (or now) plus its step's `after`.
 */
import type { CategoryPolicyCache } from './category-policy-cache.ts';
import type { Decider, Decisions } from './decider.ts';
import { decisionKey } from './decider.ts';
import { decideOne } from './decider-rules.ts';
import type { DecisionContextCache } from './decision-contexts.ts';
import type { Clock } from './ports.ts';
import type { CategoryPolicy, Decision, NewNotification } from './types.ts';

const SYSTEM_CLOCK: Clock = { now: () => new Date() };

export class PolicyDecider implements Decider {
  constructor(
    private readonly policies: Pick<CategoryPolicyCache, 'policyOf'>,
    private readonly contexts: Pick<DecisionContextCache, 'resolve' | 'anyoneHasContext'>,
    private readonly clock: Clock = SYSTEM_CLOCK,
  ) {}

  async decide(batch: readonly NewNotification[]): Promise<Decisions | undefined> {
    const now = this.clock.now();
    const policies: (CategoryPolicy | null)[] = [];
    // Whether something may be decided for a recipient with no preferences and no time zone.
    let decidesAlone = false;
    const users: string[][] = [];
    for (const n of batch) {
      let p = this.policies.policyOf(n.category);
      if (p instanceof Promise) p = await p;
      policies.push(p);
      users.push(n.to);
      if (decidesAloneFor(n, p)) decidesAlone = true;
    }
    let resolved = this.contexts.resolve(users);
    if (resolved instanceof Promise) resolved = await resolved;
    if (resolved.everyoneEmpty && !decidesAlone) return undefined;
    const { contextOf } = resolved;

    let out: Map<string, Map<string, Decision>> | undefined;
    for (const [i, n] of batch.entries()) {
      const policy = policies[i] ?? null;
      const runAt = (n.sendAt ?? now).getTime();
      const due = n.channels.map((channel) => {
        const afterMs = n.steps?.find((s) => s.channel === channel)?.afterMs ?? 0;
        return new Date(runAt + afterMs);
      });
      let mine: Map<string, Decision> | undefined;
      for (const user of n.to) {
        const context = contextOf(user);
        if (!context && !decidesAlone) continue;
        for (const [c, channel] of n.channels.entries()) {
          const d = decideOne(n, channel, due[c] as Date, context, policy);
          if (!d) continue;
          mine = mine ?? new Map();
          mine.set(decisionKey(user, channel), d);
        }
      }
      if (mine) {
        out = out ?? new Map();
        out.set(n.id, mine);
      }
    }
    return out;
  }

  async mayDecide(n: NewNotification): Promise<boolean> {
    let p = this.policies.policyOf(n.category);
    if (p instanceof Promise) p = await p;
    if (decidesAloneFor(n, p)) return true;
    const anyone = this.contexts.anyoneHasContext();
    return anyone instanceof Promise ? await anyone : anyone;
  }
}

/** Whether something may be decided for a recipient of `n` with no preferences and no time zone. */
function decidesAloneFor(n: NewNotification, p: CategoryPolicy | null): boolean {
  return Boolean(
    p?.digest || ((p?.caps.in_app || n.ttlMs) && n.channels.includes('in_app')) || (n.steps?.length && n.expiresAt),
  );
}
