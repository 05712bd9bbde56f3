/**
 * What a 1M-recipient decide costs in memory (issue 13): the decider with its caches over a store that
 * answers at once, one notification of 1,000,000 recipients × 2 channels decided in pages of 10,000 (as
 * a fan-out would), cold and warm, with and without preferences. Not a scenario of run.ts (no Herald,
 * no database): `node --import tsx benchmarks/decide-1m.ts`. The calibration line (1M Map.set + get)
 * tells how busy the machine was.
 */
import { CategoryPolicyCache } from '../src/core/category-policy-cache.ts';
import { PolicyDecider } from '../src/core/decider-policy.ts';
import { DecisionContextCache } from '../src/core/decision-contexts.ts';
import type { DecisionContext } from '../src/core/ports.ts';
import type { CategoryPolicy, NewNotification } from '../src/core/types.ts';

const N = 1_000_000;
const PAGE = 10_000;
const users = Array.from({ length: N }, (_, i) => `user-${i}`);
let reads = 0;
function storeWith(withPrefs: (u: string) => DecisionContext | null) {
  return {
    // As a store where somebody has preferences: every uncached user is read (the cold case).
    hasAnyDecisionContext: async () => true,
    async getDecisionContexts(ids: readonly string[]) {
      reads++;
      const m = new Map<string, DecisionContext>();
      for (const u of ids) {
        const c = withPrefs(u);
        if (c) m.set(u, c);
      }
      return m;
    },
  };
}
const policyStore = (p: CategoryPolicy | null) => ({
  getCategoryPolicy: async () => p,
  putCategoryPolicy: async () => {
    throw new Error();
  },
  deleteCategoryPolicy: async () => false,
});
const note = (to: string[]): NewNotification => ({
  id: 'n',
  to,
  category: 'c',
  priority: 'normal',
  channels: ['in_app', 'email'],
  steps: null,
  title: 't',
  body: null,
  data: null,
  sendAt: null,
  groupKey: null,
  createdAt: new Date(),
  idempotencyKey: null,
  requestHash: null,
  expiresAt: new Date(Date.now() + 86_400_000),
});
async function run(name: string, decider: PolicyDecider) {
  reads = 0;
  let decided = 0;
  const t0 = performance.now();
  for (let i = 0; i < N; i += PAGE) {
    const d = await decider.decide([note(users.slice(i, i + PAGE))]);
    decided += d?.get('n')?.size ?? 0;
  }
  const ms = performance.now() - t0;
  console.log(
    `${name}: ${ms.toFixed(0)} ms for ${N} recipients × 2 channels (${((ms * 1000) / N).toFixed(2)} µs/recipient), ${reads} store reads, ${decided} decisions`,
  );
}
const policy: CategoryPolicy = {
  category: 'c',
  priority: null,
  channels: null,
  required: false,
  quietHours: true,
  digest: null,
  caps: {},
  ttl: null,
  ttlMs: null,
  updatedAt: new Date(),
};
const onePercent = (u: string): DecisionContext | null =>
  Number(u.slice(5)) % 100 === 0
    ? {
        preferences: { channels: { email: false }, categories: {}, quietHours: { start: '00:00', end: '23:59' } },
        timezone: 'America/New_York',
      }
    : null;
{
  const t0 = performance.now();
  const m = new Map<string, number>();
  for (const u of users) m.set(u, 1);
  let x = 0;
  for (const u of users) x += m.get(u) ?? 0;
  console.log(`calibration: 1M Map.set + 1M Map.get of these ids: ${(performance.now() - t0).toFixed(0)} ms (${x})`);
}
for (const [name, prefs, pol, max] of [
  ['no preferences, no policy, cold cache (1M users > 200k entries)', () => null, null, 200_000],
  ['no preferences, no policy, warm cache (1.1M entries)', () => null, null, 1_100_000],
  ['1% with opt-out + quiet hours, policy, cold cache', onePercent, policy, 200_000],
] as const) {
  const contexts = new DecisionContextCache(storeWith(prefs), { maxEntries: max, now: () => 0 });
  const decider = new PolicyDecider(new CategoryPolicyCache(policyStore(pol)), contexts);
  await run(`${name} — pass 1`, decider);
  await run(`${name} — pass 2`, decider);
}
