/**
 * e2e-latency: POST /v1/notifications → receipt on the user's WebSocket, at a steady rate.
 *
 * Herald runs in its own process (every role); U users (default 200, e2e-<i>) are connected from
 * a separate client process. Single-recipient in_app notifications are posted open-loop at a
 * steady rate (default 1,000/s: a late POST is not skipped, it goes as soon as it can) to the
 * users in turn, each carrying its POST time in `data.sentAt` (a monotonic clock shared by
 * processes); the client process records receipt − sentAt. A warm-up (default 2 s at the same
 * rate) is delivered and discarded first; then --duration seconds (default 20) are measured, and
 * the run waits (≤ 60 s) until every notification answered 202 has arrived. Target: p99 ≤ 20 ms.
 *
 * Beside the latencies, where a tail can come from: Herald's own event-loop delay (from its
 * /metrics), the sender's lag behind its schedule, and the delay an idle probe process sees at
 * the same time (lib/jitter-probe.ts) — what the machine adds at every wake-up on the path.
 */
import { HeraldClient } from './lib/api-client.ts';
import { processCpuMs } from './lib/cpu.ts';
import { startJitterProbe } from './lib/jitter-probe.ts';
import {
  connectResuming,
  heraldLoopDelay,
  LATENCY_SPLIT_COLUMNS,
  postPaced,
  realtimeOf,
  startRealtimeHerald,
} from './lib/realtime.ts';
import type { Scenario } from './lib/scenario.ts';
import { percentile } from './lib/stats.ts';
import { type Fleet, startFleet } from './lib/ws-fleet.ts';

const TARGET_P99_MS = 20;
const MAX_IN_FLIGHT = 256;

export const scenario: Scenario = {
  name: 'e2e-latency',
  summary: 'POST → WebSocket receipt latency at a steady rate (default 1,000/s for 20 s to 200 users)',
  headline: 'p99',
  columns: [
    { key: 'rate', label: 'POSTs/s' },
    ...LATENCY_SPLIT_COLUMNS,
    { key: 'received', label: 'received' },
    { key: 'lost', label: 'not received' },
    { key: 'postErrors', label: 'POST errors' },
    { key: 'cpu', label: 'Herald CPU %' },
    { key: 'loopP99', label: 'Herald loop late p99 ms', digits: 1 },
    { key: 'loopMax', label: 'Herald loop late max ms', digits: 1 },
    { key: 'senderLag', label: 'sender lag max ms', digits: 1 },
    { key: 'probeP99', label: 'idle probe late p99 ms', digits: 1 },
    { key: 'probeMax', label: 'idle probe late max ms', digits: 1 },
    { key: 'target', label: `p99 ≤ ${TARGET_P99_MS} ms` },
  ],
  async trial(store, o, log) {
    const r = realtimeOf(o);
    const users = Array.from({ length: r.users ?? 200 }, (_, i) => `e2e-${i}`);
    const rate = r.rate ?? 1_000;
    const duration = r.duration ?? 20;
    const warmup = r.warmup ?? 2;
    log(`starting Herald (${store}) and the client process`);
    const herald = await startRealtimeHerald(store, o);
    let fleet: Fleet | null = null;
    const client = new HeraldClient(herald.url, 64);
    try {
      fleet = await startFleet();
      await connectResuming(fleet, herald.url, users, r);

      const cursor = { next: 0 };
      const phase = (seconds: number) => postPaced(client, users, cursor, rate, seconds, MAX_IN_FLIGHT);

      log(`warm-up: ${warmup} s at ${rate}/s to ${users.length} users`);
      const w = await phase(warmup);
      await fleet.awaitSamples(w.accepted, 60_000);
      await fleet.samples(true);

      log(`measuring ${duration} s at ${rate}/s`);
      const cpu0 = await processCpuMs(herald.pid);
      await heraldLoopDelay(herald);
      const probe = await startJitterProbe();
      const m = await phase(duration);
      const cpu1 = await processCpuMs(herald.pid);
      const loop = await heraldLoopDelay(herald);
      const machine = await probe.stop();
      const got = await fleet.awaitSamples(m.accepted, 60_000);
      const latencies = await fleet.samples(false);
      // The part after the commit: 202 received by the sender → frame received by the client.
      const receipts = await fleet.receipts();
      const afterCommit: number[] = [];
      receipts.ids.forEach((id, i) => {
        const a = m.acceptedAt.get(id);
        if (a !== undefined) afterCommit.push((receipts.at[i] as number) - a);
      });
      const status = await fleet.status();
      const dropped = Object.values(status.unexpectedCloses).reduce((s, k) => s + k, 0);
      log(
        `${m.accepted} accepted (${m.errors} errors) in ${m.pace.seconds.toFixed(1)} s, sender lag ≤ ` +
          `${Math.round(m.pace.maxLagMs)} ms; ${got.samples} received; ${dropped} sockets closed by the server`,
      );
      await fleet.disconnect();
      await herald.stop();

      const all = [...latencies];
      const p99 = percentile(all, 99);
      let max = 0;
      for (const x of all) if (x > max) max = x;
      return {
        rows: [
          {
            variant: `${users.length} users`,
            rate: Math.round(m.accepted / m.pace.seconds),
            p50: percentile(all, 50),
            p99,
            p999: percentile(all, 99.9),
            max,
            postP50: percentile(m.posts, 50),
            postP99: percentile(m.posts, 99),
            afterP50: percentile(afterCommit, 50),
            afterP99: percentile(afterCommit, 99),
            received: got.samples,
            lost: m.accepted - got.samples,
            postErrors: m.errors,
            cpu: Math.round(((cpu1 - cpu0) / (m.pace.seconds * 1000)) * 100),
            loopP99: loop.p99,
            loopMax: loop.max,
            senderLag: m.pace.maxLagMs,
            probeP99: machine.p99,
            probeMax: machine.max,
            target: p99 <= TARGET_P99_MS && got.samples === m.accepted ? 'yes' : 'no',
          },
        ],
        details: {
          pace: m.pace,
          latency: {
            p50: percentile(all, 50),
            p90: percentile(all, 90),
            p99,
            p999: percentile(all, 99.9),
            max,
          },
          post: { p50: percentile(m.posts, 50), p99: percentile(m.posts, 99) },
          afterCommit: {
            p50: percentile(afterCommit, 50),
            p99: percentile(afterCommit, 99),
            p999: percentile(afterCommit, 99.9),
          },
          clientStatus: status,
        },
      };
    } catch (e) {
      process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
      if (fleet) process.stderr.write(`client process log:\n${fleet.logTail()}\n`);
      throw e;
    } finally {
      await fleet?.stop();
      await client.close();
      await herald.cleanup();
    }
  },
};
