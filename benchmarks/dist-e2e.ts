/**
 * dist-e2e: POST → WebSocket receipt across processes in the distributed mode: one api process,
 * one worker, two gateways (lib/cluster.ts: PostgreSQL + a private Redis). U users (default 200,
 * dist-e2e-<i>) are connected, half to each gateway, each half from its own client process
 * (lib/gateway-fleets.ts). Single-recipient in_app notifications are posted to the api process
 * open-loop at --rate/s (default 1,000) to the users in turn (lib/realtime.ts postPaced), so every
 * notification crosses api → bus → worker → Redis → the gateway holding the user. A warm-up
 * (default 2 s) is delivered and discarded; then --duration s (default 20) are measured and the
 * run waits (≤ 60 s) for everything answered 202. Target: p99 ≤ 20 ms, nothing lost.
 *
 * Beside the latency: the latency split at the 202 (POST→202: the commit; 202→socket: the rest of
 * the path — bus, worker, Redis, gateway), each process's CPU (% of one core over the measured
 * window), PostgreSQL's backends and redis-server's, and how late an idle probe process woke up
 * meanwhile (lib/jitter-probe.ts: what the machine adds at every hop whatever Herald does).
 */
import { HeraldClient } from './lib/api-client.ts';
import { busOf, cpuUsed, type Member, startCluster } from './lib/cluster.ts';
import { type GatewayFleets, startGatewayFleets } from './lib/gateway-fleets.ts';
import { startJitterProbe } from './lib/jitter-probe.ts';
import { LATENCY_SPLIT_COLUMNS, postPaced, realtimeOf } from './lib/realtime.ts';
import type { Scenario } from './lib/scenario.ts';
import { percentile } from './lib/stats.ts';

const TARGET_P99_MS = 20;
const MAX_IN_FLIGHT = 256;

export const scenario: Scenario = {
  name: 'dist-e2e',
  summary: 'distributed mode: POST → WebSocket latency across api, worker and 2 gateways (1,000/s to 200 users)',
  headline: 'p99',
  stores: ['postgres'],
  columns: [
    { key: 'bus', label: 'bus' },
    { key: 'rate', label: 'POSTs/s' },
    ...LATENCY_SPLIT_COLUMNS,
    { key: 'received', label: 'received' },
    { key: 'lost', label: 'lost' },
    { key: 'postErrors', label: 'POST errors' },
    { key: 'cpuApi', label: 'api CPU %' },
    { key: 'cpuWorker', label: 'worker CPU %' },
    { key: 'cpuGateways', label: 'gateway CPU % (each)' },
    { key: 'cpuPg', label: 'PG CPU %' },
    { key: 'cpuRedis', label: 'Redis CPU %' },
    { key: 'probeP99', label: 'idle probe late p99 ms', digits: 1 },
    { key: 'target', label: `p99 ≤ ${TARGET_P99_MS} ms` },
  ],
  async trial(_store, o, log) {
    const r = realtimeOf(o);
    const users = Array.from({ length: r.users ?? 200 }, (_, i) => `dist-e2e-${i}`);
    const rate = r.rate ?? 1_000;
    const duration = r.duration ?? 20;
    const warmup = r.warmup ?? 2;
    log('starting api, worker, gateway-1, gateway-2 (PostgreSQL + Redis)');
    const cluster = await startCluster(
      [
        { name: 'api', roles: 'api' },
        { name: 'worker', roles: 'worker' },
        { name: 'gateway-1', roles: 'gateway' },
        { name: 'gateway-2', roles: 'gateway' },
      ],
      { env: o.env, cpuProfDir: o.cpuProfDir, log },
    );
    let fleets: GatewayFleets | null = null;
    // The first process started: the cluster exists only if it did.
    const api = cluster.members[0] as Member;
    const client = new HeraldClient(api.herald.url, 64);
    try {
      const gateways = cluster.withRole('gateway');
      fleets = await startGatewayFleets(gateways, users);
      const c = await fleets.connect({
        concurrency: r.connectConcurrency,
        reconnect: true,
        ack: r.ack,
        timeoutMs: 120_000,
      });
      const failed = c.results.reduce((s, x) => s + x.failed, 0);
      if (failed) throw new Error(`${failed} of ${users.length} sockets did not connect`);
      log(
        `${users.length} users connected: ${fleets.parts.map((p) => `${p.users.length} on ${p.gateway.name}`).join(', ')}`,
      );

      const cursor = { next: 0 };
      const phase = (seconds: number) =>
        postPaced(client, users, cursor, rate, seconds, MAX_IN_FLIGHT, 'bench.dist-e2e');
      const expected = (byUser: Map<string, number>) => (p: { users: string[] }) =>
        p.users.reduce((s, u) => s + (byUser.get(u) ?? 0), 0);

      log(`warm-up: ${warmup} s at ${rate}/s`);
      const w = await phase(warmup);
      await fleets.awaitSamples(expected(w.byUser), 60_000);
      await fleets.samples(true);

      log(`measuring ${duration} s at ${rate}/s`);
      const cpu0 = await cluster.cpu();
      const probe = await startJitterProbe();
      const m = await phase(duration);
      const cpu1 = await cluster.cpu();
      const machine = await probe.stop();
      const got = await fleets.awaitSamples(expected(m.byUser), 60_000);
      const latencies = await fleets.samples(false);
      // The part after the commit: 202 received by the sender → frame received by the client.
      const afterCommit: number[] = [];
      for (const { id, at } of await fleets.receipts()) {
        const a = m.acceptedAt.get(id);
        if (a !== undefined) afterCommit.push(at - a);
      }
      log(`${m.accepted} accepted (${m.errors} errors) in ${m.pace.seconds.toFixed(1)} s; ${got.samples} received`);
      const used = cpuUsed(cpu0, cpu1);
      const pct = (ms: number) => Math.round((ms / (m.pace.seconds * 1000)) * 100);
      await fleets.disconnect();
      await cluster.stop();

      const p99 = percentile(latencies, 99);
      let max = 0;
      for (const x of latencies) if (x > max) max = x;
      return {
        rows: [
          {
            variant: `${users.length} users, 2 gateways`,
            bus: busOf(o.env),
            rate: Math.round(m.accepted / m.pace.seconds),
            p50: percentile(latencies, 50),
            p99,
            p999: percentile(latencies, 99.9),
            max,
            postP50: percentile(m.posts, 50),
            postP99: percentile(m.posts, 99),
            afterP50: percentile(afterCommit, 50),
            afterP99: percentile(afterCommit, 99),
            received: got.samples,
            lost: m.accepted - got.samples,
            postErrors: m.errors,
            cpuApi: pct(used.processes.api ?? 0),
            cpuWorker: pct(used.processes.worker ?? 0),
            cpuGateways: gateways.map((g) => pct(used.processes[g.name] ?? 0)).join(' / '),
            cpuPg: pct(used.postgres),
            cpuRedis: pct(used.redis),
            probeP99: machine.p99,
            target: p99 <= TARGET_P99_MS && got.samples === m.accepted ? 'yes' : 'no',
          },
        ],
        details: { pace: m.pace, cpu: used, machine, senderLagMs: m.pace.maxLagMs },
      };
    } catch (e) {
      process.stderr.write(`Herald logs:\n${cluster.logTails()}\n`);
      if (fleets) process.stderr.write(`client processes:\n${fleets.logTails()}\n`);
      throw e;
    } finally {
      await fleets?.stop();
      await client.close();
      await cluster.cleanup();
    }
  },
};
