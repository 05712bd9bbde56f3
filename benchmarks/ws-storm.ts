/**
 * ws-storm: N concurrent WebSockets on one Herald process — how fast they connect, how fast one
 * notification reaches all of them, and what each socket costs Herald in memory.
 *
 * Herald runs in its own process (every role, gateway included); the clients run in another
 * (lib/ws-fleet-process.ts). After a small warm-up (200 sockets opened and closed), Herald's
 * memory is read ("before"); then N sockets (users storm-<i>, tokens signed HS256 with Herald's
 * HERALD_JWT_SECRET) are opened as fast as possible with a bounded number of connects in flight;
 * a socket counts when its `ready` frame arrived. Memory is read again ("with N"). Then one in_app
 * notification goes to every user (POST /v1/notifications, `to` batches of 10,000), carrying its
 * POST time in `data.sentAt` (a monotonic clock shared by processes); latency is POST → receipt.
 *
 * Memory per socket = (RSS with N sockets − RSS before) / N, RSS being VmRSS of Herald's process
 * (/proc/<pid>/status). Each reading is the median of 5, after 2 s of quiet; it is taken twice:
 * as the process is ("KB/socket RSS"), and right after a full garbage collection forced through
 * the V8 inspector (Herald runs with --inspect on a private port) so that garbage left by the
 * connects does not count ("after GC"). The V8 heap + external memory growth
 * (/metrics) is shown too. On PGlite the RSS figures are unreliable: the ~800 MB of the store's
 * first start (initdb) are released at unpredictable moments and their freed pages are reused,
 * so the heap figure, or a run on PostgreSQL (no database in Herald's process), is the one to
 * read there. 1 KB = 1024 bytes. Herald's CPU time per connect and per delivered message is
 * shown as well: on a shared machine it moves less than the rates.
 */
import { performance } from 'node:perf_hooks';
import { HeraldClient } from './lib/api-client.ts';
import { processCpuMs } from './lib/cpu.ts';
import { type HeraldMemory, realtimeOf, settledMemory, startInspectedHerald } from './lib/realtime.ts';
import type { Scenario } from './lib/scenario.ts';
import { percentile } from './lib/stats.ts';
import { BENCH_JWT_SECRET } from './lib/user-token.ts';
import { type Fleet, startFleet } from './lib/ws-fleet.ts';
import { monotonicMs } from './lib/ws-fleet-protocol.ts';

const BATCH = 10_000;
const TARGET_KB = 10;
const WARMUP_SOCKETS = 200;

const kbPer = (bytes: number, n: number) => bytes / 1024 / Math.max(1, n);
const mb = (bytes: number) => bytes / 1024 / 1024;

export const scenario: Scenario = {
  name: 'ws-storm',
  summary: 'N WebSockets on one Herald: connects/s, one notification to each (latency), memory per socket',
  headline: 'connectRate',
  columns: [
    { key: 'sockets', label: 'sockets' },
    { key: 'connectRate', label: 'connects/s', better: 'higher' },
    { key: 'connectP99', label: 'connect p99 ms' },
    { key: 'cpuPerConnect', label: 'Herald CPU µs/connect' },
    { key: 'delivered', label: 'delivered' },
    { key: 'p50', label: 'deliver p50 ms', better: 'lower' },
    { key: 'p99', label: 'deliver p99 ms', better: 'lower' },
    { key: 'deliverRate', label: 'msgs/s' },
    { key: 'cpuPerDelivery', label: 'Herald CPU µs/msg' },
    { key: 'rssBefore', label: 'RSS before MB (GC)', digits: 1 },
    { key: 'rssWith', label: 'RSS with N MB (GC)', digits: 1 },
    { key: 'kbPerSocket', label: 'KB/socket RSS', digits: 2 },
    { key: 'kbPerSocketGc', label: 'KB/socket RSS after GC', digits: 2 },
    { key: 'heapKbPerSocket', label: 'KB/socket heap+ext after GC', digits: 2 },
    { key: 'kbAfterDelivery', label: 'KB/socket after delivery, GC', digits: 2 },
    { key: 'target', label: `≤ ${TARGET_KB} KB` },
    { key: 'dropped', label: 'dropped' },
  ],
  async trial(store, o, log) {
    const r = realtimeOf(o);
    const n = r.users ?? 10_000;
    log(`starting Herald (${store}) and the client process`);
    const { herald, inspector } = await startInspectedHerald(store, o);
    // Each point: Herald's memory as it is after 2 s of quiet, then right after a forced full GC.
    const measure = async () => {
      const plain = await settledMemory(herald);
      return { plain, gc: await settledMemory(herald, inspector, 0) };
    };
    let fleet: Fleet | null = null;
    const client = new HeraldClient(herald.url, 8);
    try {
      fleet = await startFleet();
      const connect = (users: string[]) =>
        (fleet as Fleet).connect({
          url: herald.url,
          users,
          secret: BENCH_JWT_SECRET,
          concurrency: r.connectConcurrency,
          reconnect: false,
          ack: r.ack,
          timeoutMs: 300_000,
        });

      log(`warm-up: ${WARMUP_SOCKETS} sockets opened and closed`);
      await connect(Array.from({ length: WARMUP_SOCKETS }, (_, i) => `storm-warm-${i}`));
      await fleet.disconnect();
      const before = await measure();

      log(`opening ${n} sockets, ${r.connectConcurrency} connects in flight`);
      const cpu0 = await Promise.all([processCpuMs(herald.pid), processCpuMs(fleet.pid)]);
      const c = await connect(Array.from({ length: n }, (_, i) => `storm-${i}`));
      const cpu1 = await Promise.all([processCpuMs(herald.pid), processCpuMs(fleet.pid)]);
      const heraldCpuPerConnect = ((cpu1[0] - cpu0[0]) * 1000) / Math.max(1, c.opened);
      const clientCpuPerConnect = ((cpu1[1] - cpu0[1]) * 1000) / Math.max(1, c.opened);
      log(
        `${c.opened} open in ${(c.ms / 1000).toFixed(2)} s (${Math.round(c.opened / (c.ms / 1000))}/s), ${c.failed} failed` +
          (c.errors.length ? `: ${c.errors.join('; ')}` : '') +
          `; CPU per connect: Herald ${Math.round(heraldCpuPerConnect)} µs, clients ${Math.round(clientCpuPerConnect)} µs`,
      );
      const withN = await measure();
      const open = (await fleet.status()).open;

      log(`one notification to each of the ${n} users (${Math.ceil(n / BATCH)} POSTs)`);
      const cpu2 = await processCpuMs(herald.pid);
      const t0 = monotonicMs();
      const posts: Promise<string>[] = [];
      for (let i = 0; i < n; i += BATCH) {
        const to = Array.from({ length: Math.min(BATCH, n - i) }, (_, k) => `storm-${i + k}`);
        posts.push(
          client.send({
            to,
            category: 'bench.storm',
            channels: ['in_app'],
            title: 'Deploy finished',
            body: 'Herald 0.1.0 is live',
            data: { sentAt: monotonicMs() },
          }),
        );
      }
      const p0 = performance.now();
      await Promise.all(posts);
      log(`posted (202 after ${Math.round(performance.now() - p0)} ms); waiting for ${c.opened} receipts`);
      const got = await fleet.awaitSamples(c.opened, 300_000);
      const heraldCpuPerDelivery = (((await processCpuMs(herald.pid)) - cpu2) * 1000) / Math.max(1, got.samples);
      const latencies = [...(await fleet.samples(false))];
      const afterDelivery = await measure();
      const status = await fleet.status();
      const dropped = Object.values(status.unexpectedCloses).reduce((s, k) => s + k, 0);
      log(
        `${got.samples} received in ${((got.lastAt - t0) / 1000).toFixed(2)} s; Herald RSS before → with N → after ` +
          `delivery: ${[before, withN, afterDelivery].map((m) => mb(m.plain.rss).toFixed(1)).join(' → ')} MB ` +
          `(after GC: ${[before, withN, afterDelivery].map((m) => mb(m.gc.rss).toFixed(1)).join(' → ')} MB); ` +
          `client process RSS ${mb(status.rss).toFixed(0)} MB`,
      );
      await fleet.disconnect(30_000);
      await herald.stop();

      const perSocket = (a: HeraldMemory, b: HeraldMemory) => kbPer(b.rss - a.rss, open);
      const heapPerSocket = (a: HeraldMemory, b: HeraldMemory) =>
        kbPer(b.heapUsed + b.external - a.heapUsed - a.external, open);
      const kbPerSocket = perSocket(before.plain, withN.plain);
      const kbPerSocketGc = perSocket(before.gc, withN.gc);
      return {
        rows: [
          {
            variant: `${n} sockets`,
            sockets: open,
            connectRate: Math.round(c.opened / (c.ms / 1000)),
            connectP99: Math.round(c.connectMs.p99),
            cpuPerConnect: Math.round(heraldCpuPerConnect),
            delivered: got.samples,
            p50: Math.round(percentile(latencies, 50)),
            p99: Math.round(percentile(latencies, 99)),
            deliverRate: Math.round(got.samples / ((got.lastAt - t0) / 1000)),
            cpuPerDelivery: Math.round(heraldCpuPerDelivery),
            rssBefore: mb(before.gc.rss),
            rssWith: mb(withN.gc.rss),
            kbPerSocket,
            kbPerSocketGc,
            heapKbPerSocket: heapPerSocket(before.gc, withN.gc),
            kbAfterDelivery: perSocket(before.gc, afterDelivery.gc),
            target:
              Math.max(kbPerSocketGc, heapPerSocket(before.gc, withN.gc)) <= TARGET_KB && open === n ? 'yes' : 'no',
            dropped,
          },
        ],
        details: {
          connect: { ...c, heraldCpuPerConnectUs: heraldCpuPerConnect, clientCpuPerConnectUs: clientCpuPerConnect },
          memory: { before, withN, afterDelivery },
          latency: {
            p50: percentile(latencies, 50),
            p90: percentile(latencies, 90),
            p99: percentile(latencies, 99),
            max: latencies.length ? Math.max(...latencies) : null,
          },
          clientStatus: status,
        },
      };
    } catch (e) {
      process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
      if (fleet) process.stderr.write(`client process log:\n${fleet.logTail()}\n`);
      throw e;
    } finally {
      inspector.close();
      await fleet?.stop();
      await client.close();
      await herald.cleanup();
    }
  },
};
