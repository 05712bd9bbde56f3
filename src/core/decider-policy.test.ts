import { describe, expect, it } from 'vitest';
import { newNotification } from '../../test/support/notifications.ts';
import { CategoryPolicyCache } from './category-policy-cache.ts';
import { PolicyDecider } from './decider-policy.ts';
import { DecisionContextCache } from './decision-contexts.ts';
import type { DecisionContext } from './ports.ts';
import type { CategoryPolicy, NewNotification } from './types.ts';

function setup(contexts: Record<string, DecisionContext>, policy: CategoryPolicy | null = null) {
  const reads: string[][] = [];
  let asked = 0;
  const store = {
    async hasAnyDecisionContext() {
      asked++;
      return Object.keys(contexts).length > 0;
    },
    async getDecisionContexts(ids: readonly string[]) {
      reads.push([...ids]);
      return new Map(ids.flatMap((u) => (contexts[u] ? [[u, contexts[u]] as const] : [])));
    },
  };
  let now = 0;
  const cache = new DecisionContextCache(store, { ttlMs: 5_000, maxEntries: 4, now: () => now });
  const policies = new CategoryPolicyCache({
    getCategoryPolicy: async () => policy,
    putCategoryPolicy: async () => {
      throw new Error('unused');
    },
    deleteCategoryPolicy: async () => false,
  });
  const decider = new PolicyDecider(policies, cache, { now: () => new Date('2026-11-01T03:00:00Z') });
  return { reads, cache, decider, advance: (ms: number) => (now += ms), asked: () => asked };
}

const note = (to: string[], id = 'n'): NewNotification =>
  newNotification({
    id,
    to,
    category: 'c',
    channels: ['in_app', 'email'],
    title: 't',
    expiresAt: new Date('2027-01-01T00:00:00Z'),
  });

describe('PolicyDecider with its caches', () => {
  const someoneElse: Record<string, DecisionContext> = {
    z: { preferences: { channels: { sms: false }, categories: {}, quietHours: null }, timezone: null },
  };

  it('fast path: nothing decided, one read for the unknown users, none once they are cached as empty', async () => {
    const { reads, decider } = setup({ ...someoneElse });
    expect(await decider.decide([note(['a', 'b']), note(['b', 'c'], 'm')])).toBeUndefined();
    expect(reads).toEqual([['a', 'b', 'c']]);
    expect(await decider.decide([note(['a', 'c'])])).toBeUndefined();
    expect(reads).toHaveLength(1);
  });

  it('mayDecide: false while nobody has a context and the notification decides nothing alone; one question per ttl', async () => {
    const contexts: Record<string, DecisionContext> = {};
    const { decider, advance, asked } = setup(contexts);
    expect(await decider.mayDecide(note([]))).toBe(false);
    expect(await decider.mayDecide(note([]))).toBe(false);
    expect(asked()).toBe(1);
    // A ttl on an in-app notification decides alone (expiry): no question needed.
    expect(await decider.mayDecide({ ...note([]), ttlMs: 60_000 })).toBe(true);
    expect(asked()).toBe(1);
    // Somebody got preferences in another process: seen once the answer is older than the ttl.
    contexts.a = { preferences: { channels: { email: false }, categories: {}, quietHours: null }, timezone: null };
    expect(await decider.mayDecide(note([]))).toBe(false);
    advance(5_001);
    expect(await decider.mayDecide(note([]))).toBe(true);
    expect(asked()).toBe(2);
    // ... and for good: no more questions.
    advance(60_000);
    expect(await decider.mayDecide(note([]))).toBe(true);
    expect(asked()).toBe(2);
    // A write in this process counts at once.
    const fresh = setup({});
    fresh.cache.forget('b');
    expect(await fresh.decider.mayDecide(note([]))).toBe(true);
    expect(fresh.asked()).toBe(0);
  });

  it('mayDecide: a category that digests decides for everyone', async () => {
    const policy: CategoryPolicy = {
      category: 'c',
      priority: null,
      channels: null,
      required: false,
      quietHours: true,
      digest: { window: 'PT1M', windowMs: 60_000 },
      caps: {},
      ttl: null,
      ttlMs: null,
      updatedAt: new Date(),
    };
    const { decider, asked } = setup({}, policy);
    expect(await decider.mayDecide(note([]))).toBe(true);
    expect(asked()).toBe(0);
  });

  it('while nobody at all has preferences or a time zone: no read, one question per ttl; a write ends it', async () => {
    const contexts: Record<string, DecisionContext> = {};
    const { reads, decider, cache, advance, asked } = setup(contexts);
    expect(await decider.decide([note(['a', 'b'])])).toBeUndefined();
    expect(await decider.decide([note(['c'])])).toBeUndefined();
    expect([reads.length, asked()]).toEqual([0, 1]);
    advance(5_001);
    expect(await decider.decide([note(['d'])])).toBeUndefined();
    expect([reads.length, asked()]).toEqual([0, 2]);
    // A preferences write in this process: read from now on, without asking again.
    contexts.a = { preferences: { channels: { email: false }, categories: {}, quietHours: null }, timezone: null };
    cache.forget('a');
    const d = await decider.decide([note(['a'])]);
    expect(d?.get('n')?.get(`email\u0000a`)).toEqual({ kind: 'skip', reason: 'opted_out' });
    expect([reads.length, asked()]).toEqual([1, 2]);
  });

  it('reads again after the ttl, and at once after forget (with the change)', async () => {
    const contexts: Record<string, DecisionContext> = { ...someoneElse };
    const { reads, decider, cache, advance } = setup(contexts);
    await decider.decide([note(['a'])]);
    contexts.a = { preferences: { channels: { email: false }, categories: {}, quietHours: null }, timezone: null };
    expect(await decider.decide([note(['a'])])).toBeUndefined(); // still cached as empty
    cache.forget('a');
    const d = await decider.decide([note(['a'])]);
    expect(d?.get('n')?.get(`email\u0000a`)).toEqual({ kind: 'skip', reason: 'opted_out' });
    expect(reads).toHaveLength(2);
    advance(5_001);
    await decider.decide([note(['a'])]);
    expect(reads).toHaveLength(3);
  });

  it('keeps the contexts of a batch larger than the cache (its own misses evict nothing it needs)', async () => {
    const opted = { preferences: { channels: {}, categories: { c: false }, quietHours: null }, timezone: null };
    const { decider } = setup({ u0: opted, u9: opted });
    const users = Array.from({ length: 10 }, (_, i) => `u${i}`);
    const d = await decider.decide([note(users)]);
    expect([...(d?.get('n')?.keys() ?? [])].sort()).toEqual([
      'email\u0000u0',
      'email\u0000u9',
      'in_app\u0000u0',
      'in_app\u0000u9',
    ]);
  });

  it('a digest category decides for users without preferences too', async () => {
    const policy = {
      category: 'c',
      priority: null,
      channels: null,
      required: false,
      quietHours: true,
      digest: { window: 'PT1H', windowMs: 3_600_000 },
      caps: {},
      ttl: null,
      ttlMs: null,
      updatedAt: new Date(),
    } satisfies CategoryPolicy;
    const { decider } = setup({}, policy);
    const d = await decider.decide([note(['a'])]);
    expect(d?.get('n')?.get('in_app\u0000a')).toMatchObject({ kind: 'digest' });
  });
});
