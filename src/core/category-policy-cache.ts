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
import { CategoryCache, type CategoryCacheOptions } from './category-cache.ts';
import type { CategoryPolicyStore } from './ports.ts';
import type { CategoryPolicy } from './types.ts';

/** How long a cached policy (or its absence) is trusted before it is read again, in ms. */
export const POLICY_CACHE_TTL_MS = 5_000;

export interface CategoryPolicyCacheOptions extends Partial<CategoryCacheOptions> {}

export class CategoryPolicyCache implements CategoryPolicyStore {
  private readonly cache: CategoryCache<CategoryPolicy>;

  constructor(
    private readonly store: CategoryPolicyStore,
    options: CategoryPolicyCacheOptions = {},
  ) {
    this.cache = new CategoryCache((category) => store.getCategoryPolicy(category), {
      ...options,
      ttlMs: options.ttlMs ?? POLICY_CACHE_TTL_MS,
    });
  }

  /** The category's policy, or null when it has none: a plain value when cached, a promise otherwise. */
  policyOf(category: string): CategoryPolicy | null | Promise<CategoryPolicy | null> {
    return this.cache.peek(category);
  }

  /** Whether the category ignores opt-outs (`required`); the IsRequired hook of gates and unsubscribe links. */
  isRequired = (category: string): boolean | Promise<boolean> => {
    const p = this.policyOf(category);
    return p instanceof Promise ? p.then((x) => x?.required === true) : p?.required === true;
  };

  async putCategoryPolicy(policy: Omit<CategoryPolicy, 'updatedAt'>): Promise<CategoryPolicy> {
    const stored = await this.store.putCategoryPolicy(policy);
    this.cache.set(stored.category, stored);
    return stored;
  }

  getCategoryPolicy(category: string): Promise<CategoryPolicy | null> {
    return this.store.getCategoryPolicy(category);
  }

  async deleteCategoryPolicy(category: string): Promise<boolean> {
    const deleted = await this.store.deleteCategoryPolicy(category);
    this.cache.set(category, null);
    return deleted;
  }
}
