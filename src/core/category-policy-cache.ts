/**
 * Category policies as ingest, the decider and the worker's gates read them: kept in memory, the
 * absence of a policy included, so a category costs no store round trip per notification or
 * delivery after its first read.
 *
 * Promises (as TemplateCache's):
 * - A put or delete made through this cache (the categories API of this process) is seen at once by
 *   every later read of this process.
 * - A put or delete made by another process is seen within `ttlMs` (default POLICY_CACHE_TTL_MS).
 * - Concurrent reads of a category that is not cached share one store read; a failed read is not
 *   remembered.
 * - At most `maxEntries` categories are held (the oldest read goes first).
 */
import type { CategoryPolicyStore } from './ports.ts';
import type { CategoryPolicy } from './types.ts';

/** How long a cached policy (or its absence) is trusted before it is read again, in ms. */
export const POLICY_CACHE_TTL_MS = 5_000;

interface Entry {
  value: Promise<CategoryPolicy | null>;
  /** Known once `value` settled; undefined while the read runs. */
  settled?: CategoryPolicy | null;
  expiresAt: number;
}

export interface CategoryPolicyCacheOptions {
  ttlMs?: number;
  /** Categories held at once; default 10,000. */
  maxEntries?: number;
  /** Milliseconds now (tests); default Date.now. */
  now?: () => number;
}

export class CategoryPolicyCache implements CategoryPolicyStore {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly store: CategoryPolicyStore,
    options: CategoryPolicyCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? POLICY_CACHE_TTL_MS;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The category's policy, or null when it has none: a plain value when cached, a promise otherwise. */
  policyOf(category: string): CategoryPolicy | null | Promise<CategoryPolicy | null> {
    const hit = this.entries.get(category);
    if (hit && hit.expiresAt > this.now()) return hit.settled !== undefined ? hit.settled : hit.value;
    return this.load(category);
  }

  /** Whether the category ignores opt-outs (`required`); the IsRequired hook of gates and unsubscribe links. */
  isRequired = (category: string): boolean | Promise<boolean> => {
    const p = this.policyOf(category);
    return p instanceof Promise ? p.then((x) => x?.required === true) : p?.required === true;
  };

  async putCategoryPolicy(policy: Omit<CategoryPolicy, 'updatedAt'>): Promise<CategoryPolicy> {
    const stored = await this.store.putCategoryPolicy(policy);
    this.set(stored.category, stored);
    return stored;
  }

  getCategoryPolicy(category: string): Promise<CategoryPolicy | null> {
    return this.store.getCategoryPolicy(category);
  }

  async deleteCategoryPolicy(category: string): Promise<boolean> {
    const deleted = await this.store.deleteCategoryPolicy(category);
    this.set(category, null);
    return deleted;
  }

  private load(category: string): Promise<CategoryPolicy | null> {
    const entry: Entry = { value: Promise.resolve(null), expiresAt: this.now() + this.ttlMs };
    entry.value = this.store.getCategoryPolicy(category).then(
      (policy) => {
        entry.settled = policy;
        return policy;
      },
      (error: unknown) => {
        if (this.entries.get(category) === entry) this.entries.delete(category);
        throw error;
      },
    );
    this.remember(category, entry);
    return entry.value;
  }

  private set(category: string, value: CategoryPolicy | null): void {
    this.remember(category, { value: Promise.resolve(value), settled: value, expiresAt: this.now() + this.ttlMs });
  }

  private remember(category: string, entry: Entry): void {
    this.entries.delete(category);
    this.entries.set(category, entry);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}
