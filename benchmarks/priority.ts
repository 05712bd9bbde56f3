/**
 * priority: does a blast in the bulk lane delay the critical lane?
 *
 * Critical webhook notifications are posted at a steady rate (default 200 at 20/s) and timed from
 * POST to arrival at an in-bench receiver: first on an idle Herald, then right after ≥100,000 bulk
 * in_app deliveries (10,000 recipients per POST) were queued. Reports both latency distributions,
 * the p99 ratio (target ≤ 2), and how much of the blast was still queued when the critical phase
 * ended (so the second phase really ran during the blast).
 */
import { performance } from 'node:perf_hooks';
import { type HeraldClient as Client, forEachLimit, HeraldClient } from './lib/api-client.ts';
import { startHeraldProcess } from './lib/herald-process.ts';
import { startWebhookReceiver, type WebhookReceiver } from './lib/receiver.ts';
import type { BenchOptions, Scenario } from './lib/scenario.ts';
import { type LatencySummary, sleep, summarize } from './lib/stats.ts';

const RECIPIENTS_PER_POST = 10_000;

export const scenario: Scenario = {
  name: 'priority',
  summary: 'critical-lane latency (POST → webhook arrival) idle and during a ≥100k bulk blast',
  headline: 'ratio',
  columns: [
    { key: 'idleP50', label: 'idle p50 ms', digits: 1 },
    { key: 'idleP99', label: 'idle p99 ms', digits: 1 },
    { key: 'blastP50', label: 'blast p50 ms', digits: 1 },
    { key: 'blastP99', label: 'blast p99 ms', digits: 1 },
    { key: 'blastMax', label: 'blast max ms', digits: 1 },
    { key: 'ratio', label: 'p99 ratio', better: 'lower', digits: 2 },
    { key: 'idleAccept99', label: 'idle POST→202 p99', digits: 1 },
    { key: 'blastAccept99', label: 'blast POST→202 p99', digits: 1 },
    { key: 'target', label: '≤ 2×' },
    { key: 'bulkLeft', label: 'bulk left after' },
    { key: 'bulkRate', label: 'bulk deliveries/s' },
  ],
  async trial(store, o, log) {
    const receiver = await startWebhookReceiver();
    log(`starting Herald (${store})`);
    const herald = await startHeraldProcess({
      store,
      env: o.env,
      ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
    });
    const client = new HeraldClient(herald.url, 32);
    try {
      await client.putUsers(['oncall'], () => ({ webhookUrl: receiver.url }));
      // Not counted: the first requests of a fresh process pay for JIT compilation and the store's
      // first plans, and would make "idle" look slower than the system is.
      const warmup = Math.min(WARMUP_CRITICAL, o.critical);
      log(`warm-up: ${warmup} critical at ${o.rate}/s (not counted)`);
      await criticalPhase(client, receiver, { ...o, critical: warmup });
      log(`idle: ${o.critical} critical at ${o.rate}/s`);
      const idle = await criticalPhase(client, receiver, o);

      const posts = Math.ceil(o.blast / RECIPIENTS_PER_POST);
      log(`blast: queuing ${posts * RECIPIENTS_PER_POST} bulk in_app deliveries`);
      const blastStart = performance.now();
      const blastIds: string[] = [];
      await forEachLimit(
        Array.from({ length: posts }, (_, p) => p),
        2,
        async (p) => {
          const to = Array.from({ length: RECIPIENTS_PER_POST }, (_, i) => `fan-${p}-${i}`);
          blastIds.push(
            await client.send({ to, category: 'bench.blast', priority: 'bulk', channels: ['in_app'], title: 'Sale!' }),
          );
        },
      );
      log(`queued in ${((performance.now() - blastStart) / 1000).toFixed(2)} s; critical during the blast`);
      const blast = await criticalPhase(client, receiver, o);
      const bulkLeft = await remaining(client, blastIds);
      log(`${bulkLeft} bulk deliveries were still queued when the critical phase ended; waiting for the rest`);
      let left = bulkLeft;
      const drainDeadline = Date.now() + 15 * 60_000;
      while (left > 0 && Date.now() < drainDeadline) {
        await sleep(500);
        left = await remaining(client, blastIds);
      }
      const bulkRate =
        left === 0 ? Math.round((posts * RECIPIENTS_PER_POST) / ((performance.now() - blastStart) / 1000)) : null;
      await herald.stop();
      const ratio = blast.p99 / idle.p99;
      return {
        rows: [
          {
            variant: 'critical webhook',
            idleP50: idle.p50,
            idleP99: idle.p99,
            blastP50: blast.p50,
            blastP99: blast.p99,
            blastMax: blast.max,
            ratio,
            idleAccept99: idle.accept.p99,
            blastAccept99: blast.accept.p99,
            target: ratio <= 2 ? 'yes' : 'no',
            bulkLeft,
            bulkRate,
          },
        ],
        details: { idle, blast, blastDeliveries: posts * RECIPIENTS_PER_POST },
      };
    } catch (e) {
      process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
      throw e;
    } finally {
      await client.close();
      await herald.cleanup();
      await receiver.close();
    }
  },
};

interface PhaseResult extends LatencySummary {
  /** POST → 202 alone (the ingest part of the latency). */
  accept: LatencySummary;
}

/** Posts `o.critical` critical webhook notifications at `o.rate`/s; latency POST send → receiver arrival. */
/** Critical notifications sent, and not counted, before the idle phase. */
const WARMUP_CRITICAL = 40;

async function criticalPhase(client: Client, receiver: WebhookReceiver, o: BenchOptions): Promise<PhaseResult> {
  const base = receiver.arrivals.size;
  const sentAt = new Map<string, number>();
  const acceptMs: number[] = [];
  const start = performance.now();
  const sends: Promise<void>[] = [];
  for (let i = 0; i < o.critical; i++) {
    const due = start + (i * 1000) / o.rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const at = performance.now();
    sends.push(
      client
        .send({
          to: ['oncall'],
          category: 'security.otp',
          priority: 'critical',
          channels: ['webhook'],
          title: 'Your sign-in code',
          body: String(100_000 + i),
        })
        .then((id) => {
          sentAt.set(id, at);
          acceptMs.push(performance.now() - at);
        }),
    );
  }
  await Promise.all(sends);
  await receiver.waitForDistinct(base + o.critical, 120_000);
  const latencies: number[] = [];
  for (const a of receiver.arrivals.values()) {
    const s = sentAt.get(a.notificationId);
    if (s !== undefined) latencies.push(a.at - s);
  }
  return { ...summarize(latencies), accept: summarize(acceptMs) };
}

/** Deliveries of these notifications not yet in a final state. */
async function remaining(client: Client, ids: readonly string[]): Promise<number> {
  let left = 0;
  for (const id of ids) {
    const r = await client.call('GET', `/v1/notifications/${id}?limit=1`);
    if (r.status !== 200) throw new Error(`GET /v1/notifications/${id} answered ${r.status}`);
    const counts = r.json.counts as Record<string, number>;
    left += (counts.pending ?? 0) + (counts.processing ?? 0);
  }
  return left;
}
