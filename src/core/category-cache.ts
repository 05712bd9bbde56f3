/**
 * A per-category read-through cache, the absence of a value included: what TemplateCache and
 * CategoryPolicyCache keep in memory so that a category costs no store round trip per notification
 * or delivery after its first read.
 *
 * Promises:
 * - `set` (a write made through this process) is seen at once by every later read of this process.
 * - A value read from the store is trusted for `ttlMs`, then read again: a write made by another
 *   process is seen within that time.
 * - Concurrent reads of a category that is not cached share one store read; a failed read is not
 *   remembered (the next one asks the store again).
 * - At most `maxEntries` categories are held (the oldest read goes first), so free-form categories
 *   cannot grow it without bound.
 */

export interface CategoryCacheOptions {
  ttlMs: number;
  /** Categories held at once; default 10,000. */
  maxEntries?: number;
  /** Milliseconds now (tests); default Date.now. */
  now?: () => number;
}

interface Entry<V> {
  /** Settles with the value, or null: the category has none. */
  value: Promise<V | null>;
  /** Known once `value` settled; undefined while the read runs. */
  settled?: V | null;
  expiresAt: number;
}

export class CategoryCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly read: (category: string) => Promise<V | null>,
    options: CategoryCacheOptions,
  ) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The category's value, or null when it has none: a plain value when cached, a promise otherwise. */
  peek(category: string): V | null | Promise<V | null> {
    const hit = this.fresh(category);
    if (hit) return hit.settled !== undefined ? hit.settled : hit.value;
    return this.load(category);
  }

  /** The category's value, or null when it has none. Rejects only when the store does. */
  get(category: string): Promise<V | null> {
    return this.fresh(category)?.value ?? this.load(category);
  }

  /** What this process just wrote (null: deleted). */
  set(category: string, value: V | null): void {
    this.remember(category, { value: Promise.resolve(value), settled: value, expiresAt: this.now() + this.ttlMs });
  }

  /** Forgets every entry (tests; an operator's reload). */
  clear(): void {
    this.entries.clear();
  }

  private fresh(category: string): Entry<V> | undefined {
    const hit = this.entries.get(category);
    return hit && hit.expiresAt > this.now() ? hit : undefined;
  }

  private load(category: string): Promise<V | null> {
    const entry: Entry<V> = { value: Promise.resolve(null), expiresAt: this.now() + this.ttlMs };
    entry.value = this.read(category).then(
      (value) => {
        entry.settled = value;
        return value;
      },
      (error: unknown) => {
        if (this.entries.get(category) === entry) this.entries.delete(category);
        throw error;
      },
    );
    this.remember(category, entry);
    return entry.value;
  }

  private remember(category: string, entry: Entry<V>): void {
    this.entries.delete(category);
    this.entries.set(category, entry);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}
