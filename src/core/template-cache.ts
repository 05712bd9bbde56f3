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
import { CategoryCache, type CategoryCacheOptions } from './category-cache.ts';
import type { StoredTemplate, TemplateStore } from './ports.ts';
import { type CompiledTemplate, compileTemplate, type Template, TemplateRenderError } from './template-render.ts';

/** How long a cached template (or its absence) is trusted before it is read again, in ms. */
export const TEMPLATE_CACHE_TTL_MS = 5_000;

/** A category's template ready to render, or why it cannot be (it no longer compiles). */
export type CachedTemplate = { compiled: CompiledTemplate } | { error: TemplateRenderError };

export interface TemplateCacheOptions extends Partial<CategoryCacheOptions> {}

export class TemplateCache implements TemplateStore {
  private readonly cache: CategoryCache<CachedTemplate>;

  constructor(
    private readonly store: TemplateStore,
    options: TemplateCacheOptions = {},
  ) {
    this.cache = new CategoryCache(
      async (category) => {
        const stored = await store.getTemplate(category);
        return stored ? compiledOrError(stored) : null;
      },
      { ...options, ttlMs: options.ttlMs ?? TEMPLATE_CACHE_TTL_MS },
    );
  }

  /** The category's compiled template, or null when it has none. Rejects only when the store does. */
  get(category: string): Promise<CachedTemplate | null> {
    return this.cache.get(category);
  }

  /**
   * Whether the category has a template: a plain boolean when the answer is cached (no promise, no
   * store), a promise otherwise.
   */
  hasTemplate(category: string): boolean | Promise<boolean> {
    const t = this.cache.peek(category);
    return t instanceof Promise ? t.then((x) => x !== null) : t !== null;
  }

  async putTemplate(category: string, template: Template): Promise<StoredTemplate> {
    const stored = await this.store.putTemplate(category, template);
    this.cache.set(category, compiledOrError(stored));
    return stored;
  }

  getTemplate(category: string): Promise<StoredTemplate | null> {
    return this.store.getTemplate(category);
  }

  async deleteTemplate(category: string): Promise<boolean> {
    const deleted = await this.store.deleteTemplate(category);
    this.cache.set(category, null);
    return deleted;
  }

  /** Forgets every entry (tests; an operator's reload). */
  clear(): void {
    this.cache.clear();
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
