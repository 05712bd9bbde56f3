import { expect, it } from 'vitest';
import { CategoryPolicyCache } from './category-policy-cache.ts';
import type { CategoryPolicyStore } from './ports.ts';
import type { CategoryPolicy, DeliveryJob } from './types.ts';
import { UnsubscribeLinks } from './unsubscribe-links.ts';
import { UnsubscribeTokens } from './unsubscribe-token.ts';

function memoryStore() {
  const rows = new Map<string, CategoryPolicy>();
  let reads = 0;
  const store: CategoryPolicyStore = {
    async putCategoryPolicy(p) {
      const stored = { ...p, updatedAt: new Date() };
      rows.set(p.category, stored);
      return stored;
    },
    async getCategoryPolicy(c) {
      reads++;
      return rows.get(c) ?? null;
    },
    async deleteCategoryPolicy(c) {
      return rows.delete(c);
    },
  };
  return { store, rows, reads: () => reads };
}

const policy = (category: string, required: boolean) => ({
  category,
  priority: null,
  channels: null,
  required,
  quietHours: true,
  digest: null,
  caps: {},
  ttl: null,
  ttlMs: null,
});

it('answers from memory once read, at once after a put or delete through it, and within the ttl otherwise', async () => {
  const m = memoryStore();
  let now = 0;
  const cache = new CategoryPolicyCache(m.store, { ttlMs: 1000, now: () => now });
  expect(await cache.policyOf('reset')).toBeNull();
  expect(cache.policyOf('reset')).toBeNull(); // a plain value: no promise, no read
  expect(m.reads()).toBe(1);
  await cache.putCategoryPolicy(policy('reset', true));
  expect(cache.isRequired('reset')).toBe(true);
  // Another process's change: seen after the ttl.
  m.rows.set('reset', { ...policy('reset', false), updatedAt: new Date() });
  expect(cache.isRequired('reset')).toBe(true);
  now += 1001;
  expect(await cache.isRequired('reset')).toBe(false);
  await cache.deleteCategoryPolicy('reset');
  expect(cache.policyOf('reset')).toBeNull();
});

it('a required category carries no unsubscribe link', async () => {
  const m = memoryStore();
  const cache = new CategoryPolicyCache(m.store);
  await cache.putCategoryPolicy(policy('auth.reset', true));
  const links = new UnsubscribeLinks('https://h.example', new UnsubscribeTokens('x'.repeat(32)), cache.isRequired);
  const job = (category: string) => ({ userId: 'ada', channel: 'email', notification: { category } }) as DeliveryJob;
  expect(await links.linkFor(job('auth.reset'))).toBeNull();
  expect(await links.linkFor(job('news'))).toMatch(/^https:\/\/h\.example\/v1\/unsubscribe\?token=/);
});
