/**
 * Recipients' decision contexts (preferences and time zone) as the decider reads them: per batch,
 * the users not cached are read in one statement (DecisionStore.getDecisionContexts), and every
 * answer is kept — "no preferences, no time zone" included (a negative entry), which is what almost
 * every recipient has, so a batch of known users costs no store statement at all.
 *
 * Promises:
 * - `forget(userId)` (called where this process writes preferences, an opt-out or a user profile)
 *   makes the next batch of this process read that user again: a change applies at once here.
 * - A change made by another process applies within `ttlMs` (default DECISION_CONTEXT_TTL_MS).
 * - A read that was in flight while any user was forgotten is used for its batch but not kept (it may
 *   predate the write).
 * - At most `maxEntries` users are held, in two generations of half that (a full young generation
 *   replaces the old one whole: O(1) eviction, where deleting a Map's oldest key one at a time
 *   degrades to quadratic time in V8); a batch larger than that still reads each of its users once.
 */
import type { DecisionContext, DecisionStore } from './ports.ts';

/** How long a cached context (or its absence) is trusted before it is read again, in ms. */
export const DECISION_CONTEXT_TTL_MS = 5_000;

interface Entry {
  context: DecisionContext | null;
  expiresAt: number;
}

export type ContextOf = (userId: string) => DecisionContext | null;

export interface DecisionContextCacheOptions {
  ttlMs?: number;
  /** Users held at once; default 200,000. */
  maxEntries?: number;
  /** Milliseconds now (tests); default Date.now. */
  now?: () => number;
}

/** What every user resolves to while nobody has a context. */
const NOBODY = { contextOf: () => null, everyoneEmpty: true };

export class DecisionContextCache {
  /** Entries read since the last turn, and those read before it (dropped whole at the next one). */
  private young = new Map<string, Entry>();
  private old = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** Grows at every forget: a read that saw it change keeps nothing. */
  private epoch = 0;
  /**
   * Whether any user at all has a context, when that was last asked. While nobody has one (a new
   * deployment, or one that never uses preferences), uncached users need no read: nobody is asked
   * about more than once per `ttlMs`. Once somebody has one, it stays true (no more asking).
   */
  private anyone: { value: boolean; expiresAt: number } | null = null;

  constructor(
    private readonly store: Pick<DecisionStore, 'getDecisionContexts' | 'hasAnyDecisionContext'>,
    options: DecisionContextCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? DECISION_CONTEXT_TTL_MS;
    this.maxEntries = options.maxEntries ?? 200_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * The contexts of `userIds` (lists, as a batch's recipients come): a lookup at once when every one is cached (no promise, no store), else
   * after one read of the missing ones. `everyoneEmpty` is true when no user has any context (the
   * decider's fast path).
   */
  resolve(
    userIds: readonly (readonly string[])[],
  ): { contextOf: ContextOf; everyoneEmpty: boolean } | Promise<{ contextOf: ContextOf; everyoneEmpty: boolean }> {
    const now = this.now();
    let missing: Set<string> | undefined;
    // The cached users who have a context (few): kept aside, as entries may be evicted meanwhile.
    let known: Map<string, DecisionContext> | undefined;
    for (const list of userIds)
      for (const u of list) {
        const hit = this.young.get(u) ?? this.old.get(u);
        if (hit && hit.expiresAt > now) {
          if (hit.context) {
            known = known ?? new Map();
            known.set(u, hit.context);
          }
        } else {
          missing = missing ?? new Set();
          missing.add(u);
        }
      }
    if (!missing) return { contextOf: (u) => known?.get(u) ?? null, everyoneEmpty: !known };
    const anyone = this.anyone;
    if (anyone && !anyone.value && anyone.expiresAt > now) return NOBODY;
    return anyone?.value ? this.load(missing, now, known) : this.loadIfAnyone(missing, now, known);
  }

  /**
   * Whether any user at all may have a context: from the last answer while it is fresh (true for good
   * once anyone has one), else after one store question.
   */
  anyoneHasContext(): boolean | Promise<boolean> {
    const now = this.now();
    const anyone = this.anyone;
    if (anyone && (anyone.value || anyone.expiresAt > now)) return anyone.value;
    return this.askAnyone(now);
  }

  /** Asks the store whether anyone has a context, and keeps the answer for `ttlMs`. */
  private async askAnyone(now: number): Promise<boolean> {
    const epoch = this.epoch;
    const value = await this.store.hasAnyDecisionContext();
    // A forget meanwhile (a write in this process) wins: it set `anyone` to true.
    if (epoch === this.epoch) this.anyone = { value, expiresAt: now + this.ttlMs };
    return value || epoch !== this.epoch;
  }

  private async loadIfAnyone(missing: Set<string>, now: number, known: Map<string, DecisionContext> | undefined) {
    return (await this.askAnyone(now)) ? this.load(missing, now, known) : NOBODY;
  }

  /** The user's preferences or profile changed (in this process): read them again next time. */
  forget(userId: string): void {
    this.epoch++;
    this.anyone = { value: true, expiresAt: Number.POSITIVE_INFINITY };
    this.young.delete(userId);
    this.old.delete(userId);
  }

  private async load(missing: Set<string>, now: number, known: Map<string, DecisionContext> | undefined) {
    const epoch = this.epoch;
    const found = await this.store.getDecisionContexts([...missing]);
    const keep = epoch === this.epoch;
    const expiresAt = now + this.ttlMs;
    if (keep) {
      for (const u of missing) this.remember(u, { context: found.get(u) ?? null, expiresAt });
    }
    const contextOf: ContextOf = (u) => found.get(u) ?? known?.get(u) ?? null;
    return { contextOf, everyoneEmpty: !known && found.size === 0 };
  }

  private remember(userId: string, entry: Entry): void {
    if (this.young.size >= this.maxEntries / 2) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(userId, entry);
  }
}
