/**
 * dist-deliver: webhook deliveries/s in the distributed mode with one worker process and with two
 * (lib/cluster.ts: PostgreSQL + a private Redis).
 *
 * One process runs `api,scheduler` (the producer's side; it does nothing during the measurement
 * but the scheduler's periodic duties). --users users get a webhookUrl pointing at an in-bench
 * receiver (lib/receiver.ts), then --count single-recipient webhook notifications are posted
 * while no worker runs: the deliveries are queued. Then the workers start together, and the
 * receiver counts distinct webhook-ids until it has all of them.
 *
 * Two rates: `first→last` = count ÷ (last arrival − first arrival), which includes the moments
 * when one worker was ready and the other still starting; and `steady` = deliveries made after
 * every worker answered /readyz ÷ (last arrival − that moment), the one to compare. CPU is taken
 * over the steady window and divided by what each process sent in it (each worker's
 * herald_delivery_attempts_total{outcome="sent"}): ms per 1,000 deliveries for each worker, for
 * PostgreSQL's backends of the run's database and for redis-server.
 */
import { performance } from 'node:perf_hooks';
import { forEachLimit, HeraldClient } from './lib/api-client.ts';
import { busOf, counterSum, cpuUsed, type Member, startCluster } from './lib/cluster.ts';
import { startWebhookReceiver } from './lib/receiver.ts';
import type { Cell } from './lib/report.ts';
import type { BenchOptions, Scenario } from './lib/scenario.ts';

const VARIANTS = [1, 2];

export const scenario: Scenario = {
  name: 'dist-deliver',
  summary: 'distributed mode: webhook deliveries/s with 1 and 2 worker processes, CPU per 1,000 per process',
  headline: 'rate',
  stores: ['postgres'],
  columns: [
    { key: 'bus', label: 'bus' },
    { key: 'workers', label: 'workers' },
    { key: 'rate', label: 'steady deliveries/s', better: 'higher' },
    { key: 'firstLast', label: 'first→last /s' },
    { key: 'split', label: 'sent per worker' },
    { key: 'workerCpu', label: 'worker CPU ms/1k (each)' },
    { key: 'workerCpuMean', label: 'worker CPU ms/1k', better: 'lower', digits: 1 },
    { key: 'perCore', label: 'deliveries per worker CPU-s' },
    { key: 'pgCpu', label: 'PG CPU ms/1k', digits: 1 },
    { key: 'redisCpu', label: 'Redis CPU ms/1k', digits: 1 },
    { key: 'otherCpu', label: 'api+scheduler CPU ms/1k', digits: 1 },
    { key: 'busy', label: 'cores busy', digits: 2 },
    { key: 'delivered', label: 'delivered' },
    { key: 'duplicates', label: 'duplicates' },
    { key: 'queueS', label: 'queueing s', digits: 1 },
  ],
  async trial(_store, o, log) {
    const rows: Record<string, Cell>[] = [];
    for (const n of VARIANTS) rows.push({ variant: `${n} worker`, bus: busOf(o.env), ...(await measure(n, o, log)) });
    return { rows };
  },
};

async function measure(n: number, o: BenchOptions, log: (m: string) => void): Promise<Record<string, Cell>> {
  const receiver = await startWebhookReceiver();
  log('starting the api,scheduler process (PostgreSQL + Redis)');
  const cluster = await startCluster([{ name: 'api', roles: 'api,scheduler' }], {
    env: o.env,
    cpuProfDir: o.cpuProfDir,
    log,
  });
  // The first process started: the cluster exists only if it did.
  const api = cluster.members[0] as Member;
  const client = new HeraldClient(api.herald.url, 64);
  try {
    const users = Array.from({ length: o.users }, (_, i) => `hook-user-${i}`);
    log(`creating ${users.length} users with a webhookUrl; queueing ${o.count} webhook deliveries`);
    await client.putUsers(users, () => ({ webhookUrl: receiver.url }));
    const q0 = performance.now();
    await forEachLimit(
      Array.from({ length: o.count }, (_, i) => i),
      64,
      async (i) => {
        await client.send({
          to: [users[i % users.length]],
          category: 'bench.deliver',
          channels: ['webhook'],
          title: 'Build finished',
          body: `Build #${i} passed`,
        });
      },
    );
    const queueS = (performance.now() - q0) / 1000;

    log(`starting ${n} worker process${n > 1 ? 'es' : ''}`);
    const workers = await cluster.add(
      Array.from({ length: n }, (_, i) => ({ name: `worker-${i + 1}`, roles: 'worker' })),
    );
    const sent = () =>
      Promise.all(workers.map((w) => counterSum(w.herald.url, 'herald_delivery_attempts_total', { outcome: 'sent' })));
    const [cpu0, sent0] = await Promise.all([cluster.cpu(), sent()]);
    const ready = performance.now();
    const before = receiver.arrivals.size;
    const last = await receiver.waitForDistinct(o.count, Math.max(300_000, o.count * 20));
    const [cpu1, sent1] = await Promise.all([cluster.cpu(), sent()]);
    const used = cpuUsed(cpu0, cpu1);
    let first = Number.POSITIVE_INFINITY;
    for (const a of receiver.arrivals.values()) if (a.at < first) first = a.at;
    const steadySeconds = (last - ready) / 1000;
    const steady = o.count - before;
    const byWorker = workers.map((_, i) => (sent1[i] ?? 0) - (sent0[i] ?? 0));
    const total = byWorker.reduce((s, x) => s + x, 0);
    const per1k = (ms: number, count: number) => (ms * 1000) / Math.max(1, count);
    const workerMs = workers.reduce((s, w) => s + (used.processes[w.name] ?? 0), 0);
    log(`${before} delivered before every worker was ready; ${steady} in the next ${steadySeconds.toFixed(2)} s`);
    await cluster.stop();
    return {
      workers: n,
      rate: Math.round(steady / steadySeconds),
      firstLast: Math.round(o.count / ((last - first) / 1000)),
      split: byWorker.map((x) => x.toLocaleString('en-US')).join(' + '),
      workerCpu: workers.map((w, i) => per1k(used.processes[w.name] ?? 0, byWorker[i] ?? 0).toFixed(0)).join(' / '),
      workerCpuMean: per1k(workerMs, total),
      perCore: Math.round((total * 1000) / Math.max(1, workerMs)),
      pgCpu: per1k(used.postgres, total),
      redisCpu: per1k(used.redis, total),
      otherCpu: per1k(used.processes[api.name] ?? 0, total),
      busy: (workerMs + used.postgres + used.redis + (used.processes[api.name] ?? 0)) / (steadySeconds * 1000),
      delivered: receiver.arrivals.size,
      duplicates: receiver.duplicates(),
      queueS,
    };
  } catch (e) {
    process.stderr.write(`Herald logs:\n${cluster.logTails()}\n`);
    throw e;
  } finally {
    await client.close();
    await cluster.cleanup();
    await receiver.close();
  }
}
