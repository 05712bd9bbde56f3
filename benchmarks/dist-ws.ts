/**
 * dist-ws: N WebSockets (default 20,000) over two gateway processes in the distributed mode (one
 * api, one worker, two gateways on PostgreSQL + a private Redis; lib/cluster.ts), N/2 on each, each
 * half opened from its own client process (lib/gateway-fleets.ts) at the same time.
 *
 * As ws-storm, per gateway: a warm-up (100 sockets per gateway opened and closed), memory read
 * ("before"), the N sockets opened (connects/s = N ÷ wall time of the slower half), memory read
 * again ("with N"); memory per socket = growth ÷ the gateway's open sockets, read after a full GC
 * forced through the V8 inspector (each gateway runs with --inspect on a private port): RSS and V8
 * heap + external. Then one in_app notification to every user (POSTs of 10,000 recipients to the
 * api process), which the worker delivers through Redis to the gateway holding each user:
 * `deliver p50/p99` = POST → receipt (a clock every process shares), msgs/s = N ÷ (last receipt −
 * first POST). CPU per connect (each gateway) and per delivered message (worker, gateways,
 * PostgreSQL's backends, redis-server) are shown: they predict a larger machine better than rates.
 */
import { HeraldClient } from './lib/api-client.ts';
import { busOf, cpuUsed, type Member, type MemberSpec, startCluster } from './lib/cluster.ts';
import { type GatewayFleets, startGatewayFleets } from './lib/gateway-fleets.ts';
import { connectInspector, freeLocalPort, type Inspector, inspectorEnv } from './lib/inspector.ts';
import { type HeraldMemory, realtimeOf, settledMemory } from './lib/realtime.ts';
import type { Scenario } from './lib/scenario.ts';
import { percentile } from './lib/stats.ts';
import { BENCH_JWT_SECRET } from './lib/user-token.ts';
import { monotonicMs } from './lib/ws-fleet-protocol.ts';

const BATCH = 10_000;
const WARMUP_SOCKETS = 100;
const GATEWAYS = 2;

const kb = (bytes: number, n: number) => bytes / 1024 / Math.max(1, n);
const each = (xs: number[], digits = 0) => xs.map((x) => x.toFixed(digits)).join(' / ');

export const scenario: Scenario = {
  name: 'dist-ws',
  summary: 'distributed mode: 20,000 sockets over 2 gateways — connects/s, memory per socket, one notification to all',
  headline: 'connectRate',
  stores: ['postgres'],
  columns: [
    { key: 'bus', label: 'bus' },
    { key: 'sockets', label: 'sockets' },
    { key: 'connectRate', label: 'connects/s', better: 'higher' },
    { key: 'connectP99', label: 'connect p99 ms' },
    { key: 'cpuPerConnect', label: 'gateway CPU µs/connect (each)' },
    { key: 'rssPerSocket', label: 'KB/socket RSS after GC (each)' },
    { key: 'heapPerSocket', label: 'KB/socket heap+ext (each)' },
    { key: 'delivered', label: 'delivered' },
    { key: 'p50', label: 'deliver p50 ms', better: 'lower' },
    { key: 'p99', label: 'deliver p99 ms', better: 'lower' },
    { key: 'deliverRate', label: 'msgs/s' },
    { key: 'workerCpu', label: 'worker CPU µs/msg' },
    { key: 'gatewayCpu', label: 'gateway CPU µs/msg (each)' },
    { key: 'pgCpu', label: 'PG CPU µs/msg' },
    { key: 'redisCpu', label: 'Redis CPU µs/msg' },
    { key: 'dropped', label: 'dropped' },
  ],
  async trial(_store, o, log) {
    const r = realtimeOf(o);
    const n = r.users ?? 20_000;
    const ports = await Promise.all(Array.from({ length: GATEWAYS }, () => freeLocalPort()));
    const specs: MemberSpec[] = [
      { name: 'api', roles: 'api' },
      { name: 'worker', roles: 'worker' },
      ...ports.map((port, i) => ({ name: `gateway-${i + 1}`, roles: 'gateway', env: inspectorEnv(port) })),
    ];
    log(`starting ${specs.map((s) => s.name).join(', ')} (PostgreSQL + Redis)`);
    const cluster = await startCluster(specs, { env: o.env, cpuProfDir: o.cpuProfDir, log });
    const api = cluster.members[0] as Member;
    const client = new HeraldClient(api.herald.url, 8);
    const inspectors: Inspector[] = [];
    let fleets: GatewayFleets | null = null;
    try {
      const gateways = cluster.withRole('gateway');
      for (const port of ports) inspectors.push(await connectInspector(port));
      const memory = () =>
        Promise.all(gateways.map((g, i) => settledMemory(g.herald, inspectors[i] as Inspector, 2_000)));
      const users = Array.from({ length: n }, (_, i) => `dist-ws-${i}`);
      fleets = await startGatewayFleets(gateways, users);
      const parts = fleets.parts;

      log(`warm-up: ${WARMUP_SOCKETS} sockets per gateway opened and closed`);
      await Promise.all(
        parts.map((p) =>
          p.fleet.connect({
            url: p.gateway.herald.url,
            users: Array.from({ length: WARMUP_SOCKETS }, (_, i) => `dist-ws-warm-${p.gateway.name}-${i}`),
            secret: BENCH_JWT_SECRET,
            concurrency: r.connectConcurrency,
            reconnect: false,
            ack: false,
            timeoutMs: 60_000,
          }),
        ),
      );
      await fleets.disconnect();
      const before = await memory();

      log(`opening ${n} sockets over ${gateways.length} gateways, ${r.connectConcurrency} connects in flight each`);
      const cpu0 = await cluster.cpu();
      const c = await fleets.connect({
        concurrency: r.connectConcurrency,
        reconnect: false,
        ack: r.ack,
        timeoutMs: 300_000,
      });
      const cpu1 = await cluster.cpu();
      const opened = c.results.map((x) => x.opened);
      const total = opened.reduce((s, x) => s + x, 0);
      const connectCpu = cpuUsed(cpu0, cpu1);
      log(
        `${total} open in ${(c.ms / 1000).toFixed(2)} s (${opened.join(' + ')}), ` +
          `${c.results.reduce((s, x) => s + x.failed, 0)} failed`,
      );
      const withN = await memory();
      const open = await Promise.all(parts.map(async (p) => (await p.fleet.status()).open));

      log(`one notification to each of the ${total} users (${Math.ceil(n / BATCH)} POSTs to the api process)`);
      const cpu2 = await cluster.cpu();
      const t0 = monotonicMs();
      const posts: Promise<string>[] = [];
      for (let i = 0; i < n; i += BATCH) {
        posts.push(
          client.send({
            to: users.slice(i, i + BATCH),
            category: 'bench.dist-ws',
            channels: ['in_app'],
            title: 'Deploy finished',
            body: 'Herald 0.1.0 is live',
            data: { sentAt: monotonicMs() },
          }),
        );
      }
      await Promise.all(posts);
      const got = await fleets.awaitSamples((p) => c.results[parts.indexOf(p)]?.opened ?? 0, 300_000);
      const cpu3 = await cluster.cpu();
      const latencies = await fleets.samples(false);
      const deliverCpu = cpuUsed(cpu2, cpu3);
      const statuses = await Promise.all(parts.map((p) => p.fleet.status()));
      const dropped = statuses.reduce((s, st) => s + Object.values(st.unexpectedCloses).reduce((a, k) => a + k, 0), 0);
      log(`${got.samples} received in ${((got.lastAt - t0) / 1000).toFixed(2)} s`);
      await fleets.disconnect(30_000);
      await cluster.stop();

      const perMsg = (ms: number) => Math.round((ms * 1000) / Math.max(1, got.samples));
      const growth = (f: (m: HeraldMemory) => number) =>
        gateways.map((_, i) => kb(f(withN[i] as HeraldMemory) - f(before[i] as HeraldMemory), open[i] ?? 0));
      return {
        rows: [
          {
            variant: `${n} sockets, ${gateways.length} gateways`,
            bus: busOf(o.env),
            sockets: open.reduce((s, x) => s + x, 0),
            connectRate: Math.round(total / (c.ms / 1000)),
            connectP99: Math.round(Math.max(...c.results.map((x) => x.connectMs.p99))),
            cpuPerConnect: each(
              gateways.map((g, i) => ((connectCpu.processes[g.name] ?? 0) * 1000) / Math.max(1, opened[i] ?? 0)),
            ),
            rssPerSocket: each(
              growth((m) => m.rss),
              2,
            ),
            heapPerSocket: each(
              growth((m) => m.heapUsed + m.external),
              2,
            ),
            delivered: got.samples,
            p50: Math.round(percentile(latencies, 50)),
            p99: Math.round(percentile(latencies, 99)),
            deliverRate: Math.round(got.samples / ((got.lastAt - t0) / 1000)),
            workerCpu: perMsg(deliverCpu.processes.worker ?? 0),
            gatewayCpu: gateways.map((g) => perMsg(deliverCpu.processes[g.name] ?? 0)).join(' / '),
            pgCpu: perMsg(deliverCpu.postgres),
            redisCpu: perMsg(deliverCpu.redis),
            dropped,
          },
        ],
        details: { connect: c, memory: { before, withN }, connectCpu, deliverCpu },
      };
    } catch (e) {
      process.stderr.write(`Herald logs:\n${cluster.logTails()}\n`);
      if (fleets) process.stderr.write(`client processes:\n${fleets.logTails()}\n`);
      throw e;
    } finally {
      for (const i of inspectors) i.close();
      await fleets?.stop();
      await client.close();
      await cluster.cleanup();
    }
  },
};
