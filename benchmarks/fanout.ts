/**
 * fanout: a topic of 1,000,000 subscribers (`--subscribers`) fanned out into the in-app inbox.
 *
 * Per store: the subscribers are added through the API in calls of 10,000 ids (timed: a benchmark of
 * PUT /v1/topics/{topic}/subscribers too); critical in-app notifications to other users are posted at
 * `--rate`/s on the idle Herald (a warm-up, then `--critical` of them); then one topic notification is
 * posted and the same trickle of critical ones runs until its fan-out is done. The fan-out time is the
 * server's: from the notification's `createdAt` to its `fanout_done` event. A critical in-app
 * notification to a few users is written to their inboxes by its accepting statement, so its POST →
 * 202 is the time until it is in the inbox (and on its way to a socket): that is the latency measured,
 * idle and during the blast (target: blast p99 ≤ 2 × idle p99).
 *
 * Variants: `on write` (HERALD_FANOUT_ON_READ_ABOVE far above the topic: one inbox entry per
 * subscriber) and `on read` (HERALD_FANOUT_ON_READ_ABOVE=0: one topic item; entries appear when users
 * look), each on a fresh Herald and store.
 */
import { performance } from 'node:perf_hooks';
import { forEachLimit, HeraldClient } from './lib/api-client.ts';
import { startHeraldProcess } from './lib/herald-process.ts';
import type { BenchOptions, Scenario } from './lib/scenario.ts';
import { type LatencySummary, sleep, summarize } from './lib/stats.ts';

const PER_CALL = 10_000;
const WARMUP_CRITICAL = 40;

export const scenario: Scenario = {
  name: 'fanout',
  summary: 'a 1M-subscriber topic into the in-app inbox (on write and on read), critical p99 idle vs during it',
  headline: 'fanoutS',
  columns: [
    { key: 'subscribeRate', label: 'subscribe ids/s' },
    { key: 'fanoutS', label: 'fan-out s', better: 'lower', digits: 2 },
    { key: 'rate', label: 'recipients/s' },
    { key: 'pages', label: 'pages' },
    { key: 'idleP99', label: 'idle p99 ms', digits: 1 },
    { key: 'blastP50', label: 'blast p50 ms', digits: 1 },
    { key: 'blastP99', label: 'blast p99 ms', digits: 1 },
    { key: 'ratio', label: 'p99 ratio', digits: 2 },
    { key: 'target', label: '≤ 2×' },
  ],
  async trial(store, o, log) {
    const rows = [];
    const details: Record<string, unknown> = {};
    for (const variant of ['on write', 'on read'] as const) {
      const r = await runVariant(store, variant, o, log);
      rows.push(r.row);
      details[variant] = r.details;
    }
    return { rows, details };
  },
};

async function runVariant(
  store: 'pglite' | 'postgres',
  variant: 'on write' | 'on read',
  o: BenchOptions,
  log: (m: string) => void,
) {
  log(`starting Herald (${store}, fan-out ${variant})`);
  const herald = await startHeraldProcess({
    store,
    env: { HERALD_FANOUT_ON_READ_ABOVE: variant === 'on read' ? '0' : String(Number.MAX_SAFE_INTEGER), ...o.env },
    ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
  });
  const client = new HeraldClient(herald.url, 16);
  try {
    const topic = 'bench-followers';
    const calls = Math.ceil(o.subscribers / PER_CALL);
    log(`subscribing ${o.subscribers} users in ${calls} calls of ${PER_CALL}`);
    const subStart = performance.now();
    await forEachLimit(
      Array.from({ length: calls }, (_, c) => c),
      2,
      async (c) => {
        const n = Math.min(PER_CALL, o.subscribers - c * PER_CALL);
        const userIds = Array.from({ length: n }, (_, i) => `f-${String(c * PER_CALL + i).padStart(8, '0')}`);
        const r = await client.call('PUT', `/v1/topics/${topic}/subscribers`, { userIds });
        if (r.status !== 200 || r.json.added !== n)
          throw new Error(`PUT subscribers: ${r.status} ${JSON.stringify(r.json)}`);
      },
    );
    const subscribeRate = Math.round(o.subscribers / ((performance.now() - subStart) / 1000));
    log(`subscribed at ${subscribeRate} ids/s`);

    await criticalPhase(client, { ...o, critical: Math.min(WARMUP_CRITICAL, o.critical) }, () => false);
    const idle = await criticalPhase(client, o, () => false);
    log(`idle critical p99 ${idle.p99.toFixed(1)} ms; posting the topic notification`);

    const id = await client.send({ to: { topic }, category: 'bench.topic', priority: 'bulk', title: 'New post' });
    let done: { at: string; detail: { recipients: number; pages: number } } | null = null;
    let createdAt = 0;
    const watch = (async () => {
      while (!done) {
        const r = await client.call('GET', `/v1/notifications/${id}?limit=1`);
        createdAt = Date.parse(r.json.createdAt);
        done = (r.json.timeline ?? []).find((e: { event: string }) => e.event === 'fanout_done') ?? null;
        if (!done) await sleep(100);
      }
    })();
    const blast = await criticalPhase(client, o, () => done !== null);
    await watch;
    const end = done as unknown as { at: string; detail: { recipients: number; pages: number } };
    const fanoutS = (Date.parse(end.at) - createdAt) / 1000;
    if (end.detail.recipients !== o.subscribers) {
      throw new Error(`fan-out served ${end.detail.recipients}, not ${o.subscribers}`);
    }
    log(`fan-out ${variant}: ${fanoutS.toFixed(2)} s, ${end.detail.pages} pages; blast p99 ${blast.p99.toFixed(1)} ms`);
    await herald.stop();
    const ratio = blast.count ? blast.p99 / idle.p99 : null;
    return {
      row: {
        variant: `${variant}${blast.count < o.critical ? ` (${blast.count} critical during it)` : ''}`,
        subscribeRate,
        fanoutS,
        rate: Math.round(o.subscribers / Math.max(fanoutS, 0.001)),
        pages: end.detail.pages,
        idleP99: idle.p99,
        blastP50: blast.count ? blast.p50 : null,
        blastP99: blast.count ? blast.p99 : null,
        ratio,
        target: ratio === null ? 'n/a' : ratio <= 2 ? 'yes' : 'no',
      },
      details: { idle, blast, fanoutS, subscribeRate },
    };
  } catch (e) {
    process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
    throw e;
  } finally {
    await client.close();
    await herald.cleanup();
  }
}

/**
 * Posts up to `o.critical` critical in-app notifications (to 3 users each) at `o.rate`/s, stopping
 * early when `stop()` says so; returns their POST → 202 latencies.
 */
async function criticalPhase(client: HeraldClient, o: BenchOptions, stop: () => boolean): Promise<LatencySummary> {
  const ms: number[] = [];
  const start = performance.now();
  const sends: Promise<void>[] = [];
  for (let i = 0; i < o.critical && !stop(); i++) {
    const wait = start + (i * 1000) / o.rate - performance.now();
    if (wait > 0) await sleep(wait);
    const at = performance.now();
    sends.push(
      client
        .send({
          to: [`oncall-${i % 10}`, `oncall-${(i + 1) % 10}`, `oncall-${(i + 2) % 10}`],
          category: 'security.otp',
          priority: 'critical',
          channels: ['in_app'],
          title: 'Your sign-in code',
          body: String(100_000 + i),
        })
        .then(() => {
          ms.push(performance.now() - at);
        }),
    );
  }
  await Promise.all(sends);
  return summarize(ms);
}
