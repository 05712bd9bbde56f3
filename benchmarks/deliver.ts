/**
 * deliver: end-to-end webhook deliveries per second.
 *
 * An in-bench receiver answers 200 at once on kept-alive connections. N users get a webhookUrl
 * pointing at it; then M single-recipient webhook notifications are posted as fast as the API takes
 * them (64 at a time). The clock runs from the first POST until the receiver has seen all M distinct
 * webhook-ids. Latency is receiver arrival − POST send time, matched by the notification id in the
 * body; with everything posted at once it is mostly time spent waiting in the queue.
 */
import { performance } from 'node:perf_hooks';
import { forEachLimit, HeraldClient } from './lib/api-client.ts';
import { startHeraldProcess } from './lib/herald-process.ts';
import { startWebhookReceiver } from './lib/receiver.ts';
import type { Scenario } from './lib/scenario.ts';
import { summarize } from './lib/stats.ts';

export const scenario: Scenario = {
  name: 'deliver',
  summary: 'end-to-end webhook deliveries/s to a local receiver, with delivery latency',
  headline: 'rate',
  columns: [
    { key: 'rate', label: 'deliveries/s', better: 'higher' },
    { key: 'delivered', label: 'delivered' },
    { key: 'seconds', label: 'total s', digits: 2 },
    { key: 'postRate', label: 'POSTs/s' },
    { key: 'p50', label: 'latency p50 ms', better: 'lower' },
    { key: 'p99', label: 'latency p99 ms', better: 'lower' },
    { key: 'max', label: 'max ms' },
    { key: 'duplicates', label: 'duplicates' },
  ],
  async trial(store, o, log) {
    const receiver = await startWebhookReceiver();
    log(`starting Herald (${store})`);
    const herald = await startHeraldProcess({
      store,
      env: o.env,
      ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
    });
    const client = new HeraldClient(herald.url, 64);
    try {
      const users = Array.from({ length: o.users }, (_, i) => `hook-user-${i}`);
      log(`creating ${users.length} users with a webhookUrl`);
      await client.putUsers(users, () => ({ webhookUrl: receiver.url }));

      log(`posting ${o.count} webhook notifications`);
      const sentAt = new Map<string, number>();
      const t0 = performance.now();
      await forEachLimit(
        Array.from({ length: o.count }, (_, i) => i),
        64,
        async (i) => {
          const at = performance.now();
          const id = await client.send({
            to: [users[i % users.length]],
            category: 'bench.deliver',
            channels: ['webhook'],
            title: 'Build finished',
            body: `Build #${i} passed`,
          });
          sentAt.set(id, at);
        },
      );
      const posted = performance.now();
      log(`posted in ${((posted - t0) / 1000).toFixed(2)} s; waiting for the receiver`);
      const last = await receiver.waitForDistinct(o.count, Math.max(300_000, o.count * 20));
      const seconds = (last - t0) / 1000;
      const latencies: number[] = [];
      for (const a of receiver.arrivals.values()) {
        const s = sentAt.get(a.notificationId);
        if (s !== undefined) latencies.push(a.at - s);
      }
      const l = summarize(latencies);
      await herald.stop();
      return {
        rows: [
          {
            variant: 'webhook, all roles',
            rate: Math.round(o.count / seconds),
            delivered: receiver.arrivals.size,
            seconds,
            postRate: Math.round(o.count / ((posted - t0) / 1000)),
            p50: Math.round(l.p50),
            p99: Math.round(l.p99),
            max: Math.round(l.max),
            duplicates: receiver.duplicates(),
          },
        ],
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
