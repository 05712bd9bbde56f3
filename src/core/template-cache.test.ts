import { describe, expect, it } from 'vitest';
import type { StoredTemplate, TemplateStore } from './ports.ts';
import { TemplateCache } from './template-cache.ts';
import type { Template } from './template-render.ts';

const TEMPLATE: Template = { defaultLocale: 'en', locales: { en: { title: 'Hi {{ user.id }}' } } };

/** A TemplateStore in memory that counts its reads, and can be made to fail or wait. */
function memoryStore() {
  const rows = new Map<string, StoredTemplate>();
  const state = { reads: 0, fail: false, gate: null as Promise<void> | null };
  const store: TemplateStore = {
    async putTemplate(category, t) {
      const s = { category, ...t, updatedAt: new Date() };
      rows.set(category, s);
      return s;
    },
    async getTemplate(category) {
      state.reads++;
      if (state.gate) await state.gate;
      if (state.fail) throw new Error('store down');
      return rows.get(category) ?? null;
    },
    async deleteTemplate(category) {
      return rows.delete(category);
    },
  };
  return { store, rows, state };
}

describe('TemplateCache', () => {
  it('reads a category once while fresh, its absence included, and answers hasTemplate without a promise', async () => {
    const { store, state } = memoryStore();
    await store.putTemplate('with', TEMPLATE);
    const cache = new TemplateCache(store);
    expect(await cache.hasTemplate('with')).toBe(true);
    expect(await cache.hasTemplate('without')).toBe(false);
    expect(state.reads).toBe(2);
    for (let i = 0; i < 5; i++) {
      expect(cache.hasTemplate('with')).toBe(true);
      expect(cache.hasTemplate('without')).toBe(false);
      expect(await cache.get('without')).toBeNull();
      expect(await cache.get('with')).toMatchObject({ compiled: { template: TEMPLATE } });
    }
    expect(state.reads).toBe(2);
  });

  it('compiles once: every field parsed, by its place', async () => {
    const { store } = memoryStore();
    await store.putTemplate('c', {
      defaultLocale: 'en',
      locales: { en: { title: 'x', body: 'y', email: { html: '<p>{{ data.a }}</p>' } } },
    });
    const got = await new TemplateCache(store).get('c');
    const parsed = got && 'compiled' in got ? [...got.compiled.parsed.keys()].sort() : [];
    expect(parsed).toEqual(['html:locales.en.body', 'locales.en.body', 'locales.en.email.html', 'locales.en.title']);
  });

  it('shares one store read among concurrent misses', async () => {
    const { store, state } = memoryStore();
    let open = () => {};
    state.gate = new Promise<void>((r) => {
      open = r;
    });
    const cache = new TemplateCache(store);
    const reads = [cache.get('a'), cache.get('a'), cache.hasTemplate('a')];
    open();
    expect(await Promise.all(reads)).toEqual([null, null, false]);
    expect(state.reads).toBe(1);
  });

  it('sees a put or delete through it at once', async () => {
    const { store, state } = memoryStore();
    const cache = new TemplateCache(store);
    expect(await cache.hasTemplate('c')).toBe(false);
    await cache.putTemplate('c', TEMPLATE);
    expect(cache.hasTemplate('c')).toBe(true);
    expect(await cache.deleteTemplate('c')).toBe(true);
    expect(cache.hasTemplate('c')).toBe(false);
    expect(state.reads).toBe(1);
  });

  it("sees another process's change once the entry is older than the TTL", async () => {
    const { store, state } = memoryStore();
    let now = 1_000;
    const cache = new TemplateCache(store, { ttlMs: 5_000, now: () => now });
    expect(await cache.hasTemplate('c')).toBe(false);
    await store.putTemplate('c', TEMPLATE); // another process, straight to the store
    now += 4_999;
    expect(cache.hasTemplate('c')).toBe(false);
    now += 2;
    expect(await cache.hasTemplate('c')).toBe(true);
    expect(state.reads).toBe(2);
  });

  it('does not remember a failed read', async () => {
    const { store, state } = memoryStore();
    const cache = new TemplateCache(store);
    state.fail = true;
    await expect(cache.get('c')).rejects.toThrow('store down');
    state.fail = false;
    expect(await cache.get('c')).toBeNull();
    expect(state.reads).toBe(2);
  });

  it('holds at most maxEntries categories, forgetting the oldest', async () => {
    const { store, state } = memoryStore();
    const cache = new TemplateCache(store, { maxEntries: 2 });
    for (const c of ['a', 'b', 'c']) await cache.get(c);
    expect(state.reads).toBe(3);
    await cache.get('c');
    await cache.get('b');
    expect(state.reads).toBe(3);
    await cache.get('a');
    expect(state.reads).toBe(4);
  });

  it('keeps a stored template that no longer compiles as an error, not a failure of every read', async () => {
    const { store, rows } = memoryStore();
    rows.set('bad', {
      category: 'bad',
      defaultLocale: 'en',
      locales: { en: { title: '{{ x | nope }}' } },
      updatedAt: new Date(),
    });
    const got = await new TemplateCache(store).get('bad');
    expect(got && 'error' in got && got.error.field).toBe('locales.en.title');
  });
});
