/**
 * Templates per category as delivery reads them: compiled once (every Liquid field parsed) and kept
 * in memory, the absence of a template included, so a category without one costs no store round
 * trip per notification or delivery after its first.
 *
 * Promises:
 * - A put or delete made through this cache (the templates API of this process) is seen at once by
 *   every later read of this process.
 * - A put or delete made by another process is seen within `ttlMs` (default TEMPLATE_CACHE_TTL_MS):
 *   an entry older than that is read again from the store.
 * - Concurrent reads of a category that is not cached share one store read.
 * - At most `maxEntries` categories are held (the oldest read goes first), so free-form categories
 *   cannot grow it without bound.
 *
 * It is a TemplateStore itself: the API writes through it, so it knows what this process changed.
 */
import type { StoredTemplate, TemplateStore } from './ports.ts';
import { type CompiledTemplate, compileTemplate, type Template, TemplateRenderError } from './template-render.ts';

/** How long a cached template (or its absence) is trusted before it is read again, in ms. */
export const TEMPLATE_CACHE_TTL_MS = 5_000;

/** A category's template ready to render, or why it cannot be (it no longer compiles). */
export type CachedTemplate = { compiled: CompiledTemplate } | { error: TemplateRenderError };

interface Entry {
  /** Settles with the template, or null: the category has none. */
  value: Promise<CachedTemplate | null>;
  /** Known once `value` settled; undefined while the read runs. */
  settled?: CachedTemplate | null;
  expiresAt: number;
}

export interface TemplateCacheOptions {
  /** Default TEMPLATE_CACHE_TTL_MS. */
  ttlMs?: number;
  /** Categories held at once; default 10,000. */
  maxEntries?: number;
  /** Milliseconds now (tests); default Date.now. */
  now?: () => number;
}

export class TemplateCache implements TemplateStore {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly store: TemplateStore,
    options: TemplateCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? TEMPLATE_CACHE_TTL_MS;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The category's compiled template, or null when it has none. Rejects only when the store does. */
  get(category: string): Promise<CachedTemplate | null> {
    const hit = this.entries.get(category);
    if (hit && hit.expiresAt > this.now()) return hit.value;
    return this.load(category);
  }

  /**
   * Whether the category has a template: a plain boolean when the answer is cached (no promise, no
   * store), a promise otherwise.
   */
  hasTemplate(category: string): boolean | Promise<boolean> {
    const hit = this.entries.get(category);
    if (hit && hit.expiresAt > this.now() && hit.settled !== undefined) return hit.settled !== null;
    return this.get(category).then((t) => t !== null);
  }

  async putTemplate(category: string, template: Template): Promise<StoredTemplate> {
    const stored = await this.store.putTemplate(category, template);
    this.set(category, compiledOrError(stored));
    return stored;
  }

  getTemplate(category: string): Promise<StoredTemplate | null> {
    return this.store.getTemplate(category);
  }

  async deleteTemplate(category: string): Promise<boolean> {
    const deleted = await this.store.deleteTemplate(category);
    this.set(category, null);
    return deleted;
  }

  /** Forgets every entry (tests; an operator's reload). */
  clear(): void {
    this.entries.clear();
  }

  private load(category: string): Promise<CachedTemplate | null> {
    const entry: Entry = { value: Promise.resolve(null), expiresAt: this.now() + this.ttlMs };
    entry.value = this.store.getTemplate(category).then(
      (stored) => {
        const value = stored ? compiledOrError(stored) : null;
        entry.settled = value;
        return value;
      },
      (error: unknown) => {
        // A failed read is not remembered: the next one asks the store again.
        if (this.entries.get(category) === entry) this.entries.delete(category);
        throw error;
      },
    );
    this.remember(category, entry);
    return entry.value;
  }

  private set(category: string, value: CachedTemplate | null): void {
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

function compiledOrError(t: StoredTemplate): CachedTemplate {
  try {
    return { compiled: compileTemplate({ defaultLocale: t.defaultLocale, locales: t.locales }) };
  } catch (e) {
    if (e instanceof TemplateRenderError) return { error: e };
    throw e;
  }
}
