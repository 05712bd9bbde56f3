/**
 * Issue 12: "A slow webhook receiver (10 s per request) does not delay another receiver's deliveries
 * in the same lane beyond their normal p99." On both stores.
 *
 * One Herald (lane `normal` with 16 slots, HERALD_WEBHOOK_MAX_PER_DESTINATION at its default, 8),
 * a fast receiver (answers at once) and a slow one (answers after 10 s), on two ports — two
 * destinations. First the fast receiver's delivery latency is measured alone (POST sent → request
 * received, for a steady stream of single-recipient notifications); then 300 deliveries to the slow
 * receiver are queued in the same lane, and once it has its first requests in hand the same stream
 * is measured again.
 *
 * The margin: the loaded p99 may be twice the measured p99 plus 300 ms. The machine is shared and
 * noisy (the baseline p99 alone varies 2–3× between runs), and when the 300 deliveries arrive they
 * are accepted in one statement and most of them handed back in another, which other statements
 * wait behind (on PGlite, every statement waits for the one before). Without per-destination
 * limits the 300 slow deliveries hold all 16 slots of the lane, 10 s at a time, and the fast
 * deliveries wait seconds behind them: far outside the margin. Run once against the worker before
 * the limit (55ff70f), the 120 fast deliveries had still not all arrived 60 s after the stream
 * ended: they were queued behind the slow backlog, which went out 16 every 10 s.
 *
 * Measured here (2 shared cores, other suites running): PostgreSQL p99 21–96 ms alone, 126–265 ms
 * loaded; PGlite 70–228 ms alone, 103–364 ms loaded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { type Receiver, startReceiver } from './support/receiver.ts';

const SLOW_MS = 10_000;
const SLOW_DELIVERIES = 300;
const LANE_SLOTS = 16;
const PER_DESTINATION = 8;
/** The fast stream: this many notifications, one every INTERVAL_MS. */
const FAST_COUNT = 120;
const INTERVAL_MS = 40;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** Most requests that were in hand at once, each held `holdMs` from its arrival. */
function mostAtOnce(arrivals: number[], holdMs: number): number {
  const sorted = [...arrivals].sort((a, b) => a - b);
  let most = 0;
  let from = 0;
  for (let i = 0; i < sorted.length; i++) {
    while ((sorted[from] as number) <= (sorted[i] as number) - holdMs) from++;
    most = Math.max(most, i - from + 1);
  }
  return most;
}

describe.each(['postgres', 'pglite'] as const)('a slow webhook receiver (%s)', (store) => {
  let t: TestHerald;
  let fast: Receiver;
  let slow: Receiver;
  let run = 0;

  beforeAll(async () => {
    fast = await startReceiver(() => 200);
    slow = await startReceiver(() => ({ status: 200, delayMs: SLOW_MS }));
    t = await startTestHerald({
      store,
      env: {
        HERALD_LANE_CONCURRENCY: `normal=${LANE_SLOTS}`,
        HERALD_WEBHOOK_TIMEOUT_MS: '15000',
        HERALD_WEBHOOK_MAX_PER_DESTINATION: String(PER_DESTINATION),
      },
    });
    const users = [
      ...Array.from({ length: 20 }, (_, i) => [`fast-${i}`, fast.url]),
      ...Array.from({ length: SLOW_DELIVERIES }, (_, i) => [`slow-${i}`, slow.url]),
    ];
    for (const [id, url] of users) {
      const r = await t.api('PUT', `/v1/users/${id}`, { webhookUrl: url });
      expect(r.status).toBe(200);
    }
  }, 120_000);

  afterAll(async () => {
    // The slow receiver goes first: its requests in flight end at once instead of after 10 s.
    await slow?.close();
    await fast?.close();
    await t?.stop();
  }, 60_000);

  /** Posts the fast stream at a steady pace; returns each delivery's latency (POST sent → received). */
  async function fastStream(): Promise<number[]> {
    const tag = `run-${++run}`;
    const sentAt = new Map<string, number>();
    const posts: Promise<void>[] = [];
    for (let i = 0; i < FAST_COUNT; i++) {
      const at = Date.now();
      posts.push(
        t
          .api('POST', '/v1/notifications', {
            to: [`fast-${i % 20}`],
            category: 'build.finished',
            channels: ['webhook'],
            title: 'Build finished',
            body: `${tag} #${i}`,
          })
          .then((r) => {
            expect(r.status).toBe(202);
            sentAt.set(r.json.id, at);
          }),
      );
      await sleep(INTERVAL_MS);
    }
    await Promise.all(posts);
    const mine = () => fast.received.filter((r) => String(r.json?.body).startsWith(`${tag} `));
    await eventually(
      () => new Set(mine().map((r) => r.id)).size >= FAST_COUNT,
      `${FAST_COUNT} fast deliveries`,
      60_000,
    );
    const firstArrival = new Map<string, number>();
    for (const r of mine()) if (!firstArrival.has(r.json.id)) firstArrival.set(r.json.id, r.at);
    return [...sentAt].map(([id, at]) => (firstArrival.get(id) as number) - at);
  }

  it('does not delay another receiver in the same lane beyond its normal p99', async () => {
    const alone = await fastStream();
    const baseline = percentile(alone, 99);

    const r = await t.api('POST', '/v1/notifications', {
      to: Array.from({ length: SLOW_DELIVERIES }, (_, i) => `slow-${i}`),
      category: 'build.finished',
      channels: ['webhook'],
      title: 'Nightly report',
      body: 'slow',
    });
    expect(r.status).toBe(202);
    const slowId = r.json.id as string;
    await eventually(() => slow.received.length >= PER_DESTINATION, 'the slow receiver to have its first requests');

    const loaded = await fastStream();
    const p99 = percentile(loaded, 99);
    const allowed = 2 * baseline + 300;
    const summary = `fast p99 alone ${baseline} ms, with the slow receiver loaded ${p99} ms (allowed ${allowed} ms)`;
    console.log(`[${store}] ${summary}`);
    expect(p99, summary).toBeLessThanOrEqual(allowed);

    // Deferred deliveries come back and are sent as the slow receiver frees its slots: a second
    // round of 8 once the first has been answered, each delivery once.
    await eventually(() => slow.received.length >= 2 * PER_DESTINATION, 'a second round at the slow receiver', 30_000);
    expect(slow.distinctIds().size).toBe(slow.received.length);
    // The slow receiver never had more requests in hand than its destination's limit.
    expect(
      mostAtOnce(
        slow.received.map((x) => x.at),
        SLOW_MS,
      ),
    ).toBeLessThanOrEqual(PER_DESTINATION);
    // Its waiting deliveries were handed back without using up attempts.
    const v = await t.api('GET', `/v1/notifications/${slowId}?limit=1000`);
    expect(v.status).toBe(200);
    const deliveries = v.json.deliveries as { status: string; attempts: number }[];
    expect(deliveries).toHaveLength(SLOW_DELIVERIES);
    expect(Math.max(...deliveries.map((d) => d.attempts))).toBe(1);
    expect(deliveries.filter((d) => d.status === 'pending' && d.attempts === 0).length).toBeGreaterThan(
      SLOW_DELIVERIES / 2,
    );
    expect(v.json.timeline.some((e: { event: string }) => e.event === 'deferred')).toBe(true);
  }, 120_000);
});
