/**
 * reconnect-chaos: clients drop and reconnect while notifications flow; at the end every client
 * must hold every seq of its user exactly once, in order.
 *
 * Herald runs in its own process (every role); C clients (default 1,000 users chaos-<i>, one
 * socket each) run in a separate process. In-app notifications (default 20,000 in all) are posted
 * at a steady rate (default 1,000/s) in POSTs of --fanout distinct users (default 10, chosen by a
 * seeded PRNG, so users get different counts). Meanwhile each client drops its socket
 * (terminate, no close handshake) --reconnects times (default 3) at random moments of the posting
 * window, stays away 0–1 s, and reconnects with `after=<highest seq seen>`; a socket the server
 * closes is reconnected the same way. After the last POST the drops stop and the run waits (≤ 120 s)
 * until every user has seqs 1..n, n being the number of 202-answered POSTs that named the user
 * (the store is fresh, so a user's seqs start at 1).
 *
 * Per receipt the client checks: a seq it already had is a duplicate; one that is not the previous
 * + 1 is out of order; at the end, a seq in 1..n never received is a gap. The trial fails
 * (exit code 1) unless gaps, duplicates, out-of-order receipts and POST errors are all zero.
 */
import { performance } from 'node:perf_hooks';
import { HeraldClient } from './lib/api-client.ts';
import { processCpuMs } from './lib/cpu.ts';
import { paced } from './lib/pace.ts';
import { connectResuming, realtimeOf, startRealtimeHerald } from './lib/realtime.ts';
import type { Scenario } from './lib/scenario.ts';
import { type Fleet, startFleet } from './lib/ws-fleet.ts';
import { seededRandom } from './lib/ws-fleet-protocol.ts';

const SEED = 20_261_125;
const MAX_OFFLINE_MS = 1_000;

export const scenario: Scenario = {
  name: 'reconnect-chaos',
  summary: 'clients drop and reconnect with after=<seq> while notifications flow; zero gaps and duplicates',
  headline: 'seconds',
  columns: [
    { key: 'clients', label: 'clients' },
    { key: 'expected', label: 'notifications' },
    { key: 'received', label: 'received' },
    { key: 'gaps', label: 'gaps' },
    { key: 'duplicates', label: 'duplicates' },
    { key: 'outOfOrder', label: 'out of order' },
    { key: 'drops', label: 'drops' },
    { key: 'retries', label: 'failed reconnects' },
    { key: 'reconnects', label: 'reconnects' },
    { key: 'reconnectP50', label: 'reconnect→ready p50 ms' },
    { key: 'reconnectP99', label: 'reconnect→ready p99 ms' },
    { key: 'serverCloses', label: 'server closes' },
    { key: 'postErrors', label: 'POST errors' },
    { key: 'rate', label: 'notifications/s' },
    { key: 'seconds', label: 'complete after s', better: 'lower', digits: 1 },
    { key: 'result', label: 'result' },
  ],
  async trial(store, o, log) {
    const r = realtimeOf(o);
    const users = Array.from({ length: r.users ?? 1_000 }, (_, i) => `chaos-${i}`);
    const total = r.count ?? 20_000;
    const fanout = Math.min(r.fanout ?? 10, users.length);
    const rate = r.rate ?? 1_000;
    const posts = Math.ceil(total / fanout);
    const postRate = rate / fanout;
    const windowMs = (posts / postRate) * 1000;

    // The plan: which users each POST names (seeded, so every run posts the same).
    const random = seededRandom(SEED);
    const plan = Array.from({ length: posts }, (_, p) => {
      const size = Math.min(fanout, total - p * fanout);
      const to = new Set<string>();
      while (to.size < size) to.add(users[Math.floor(random() * users.length)] as string);
      return [...to];
    });

    log(`starting Herald (${store}) and the client process`);
    const herald = await startRealtimeHerald(store, o);
    let fleet: Fleet | null = null;
    let progress: NodeJS.Timeout | undefined;
    const client = new HeraldClient(herald.url, 32);
    try {
      fleet = await startFleet();
      await connectResuming(fleet, herald.url, users, r);

      log(
        `${total} notifications in ${posts} POSTs of ${fanout} at ${rate}/s (${(windowMs / 1000).toFixed(0)} s); ` +
          `${r.reconnects} drops per client meanwhile`,
      );
      await fleet.chaos({
        durationMs: windowMs,
        dropsPerClient: r.reconnects,
        maxOfflineMs: MAX_OFFLINE_MS,
        seed: SEED + 1,
      });
      const expected: Record<string, number> = {};
      let postErrors = 0;
      const f = fleet;
      let cpuBefore = await processCpuMs(herald.pid);
      progress = setInterval(() => {
        Promise.all([f.status(), processCpuMs(herald.pid)]).then(
          ([st, cpu]) => {
            log(
              `  ${st.open}/${st.clients} open, ${st.notifications} received, ${st.drops} drops, ` +
                `${st.reconnects} reconnects (${st.reconnectFailures} failed), server closes ` +
                `${JSON.stringify(st.unexpectedCloses)}, Herald CPU ${Math.round((cpu - cpuBefore) / 50)}%`,
            );
            cpuBefore = cpu;
          },
          () => {},
        );
      }, 5_000);
      const t0 = performance.now();
      const pace = await paced(posts, postRate, 64, windowMs + 120_000, async (p) => {
        const to = plan[p] as string[];
        try {
          await client.send({
            to,
            category: 'bench.chaos',
            channels: ['in_app'],
            title: 'Order update',
            body: `Update #${p}`,
            data: { post: p },
          });
          for (const u of to) expected[u] = (expected[u] ?? 0) + 1;
        } catch {
          postErrors++;
        }
      });
      log(`posted in ${pace.seconds.toFixed(1)} s (sender lag ≤ ${Math.round(pace.maxLagMs)} ms); checking every seq`);
      const postedAfter = (performance.now() - t0) / 1000;
      const v = await fleet.awaitSeqs(expected, 120_000);
      // From the first POST until every client had all of its seqs.
      const seconds = postedAfter + v.waitedMs / 1000;
      clearInterval(progress);
      const status = await fleet.status();
      const serverCloses = Object.values(status.unexpectedCloses).reduce((s, k) => s + k, 0);
      const pass = v.complete && v.gaps === 0 && v.duplicates === 0 && v.outOfOrder === 0 && postErrors === 0;
      log(
        `${v.received}/${v.expected} received; gaps ${v.gaps}, duplicates ${v.duplicates}, out of order ` +
          `${v.outOfOrder}, extra ${v.extra}; ${status.drops} drops, ${status.reconnects} reconnects, server closes ` +
          `${JSON.stringify(status.unexpectedCloses)}` +
          (v.examples.length ? `; e.g. ${JSON.stringify(v.examples)}` : ''),
      );
      if (!pass) {
        process.exitCode = 1;
        log('FAIL: every seq must arrive exactly once, in order');
      }
      await fleet.disconnect();
      await herald.stop();
      return {
        rows: [
          {
            variant: `${users.length} clients, ${r.reconnects} drops each`,
            clients: users.length,
            expected: v.expected,
            received: v.received,
            gaps: v.gaps,
            duplicates: v.duplicates,
            outOfOrder: v.outOfOrder,
            drops: status.drops,
            retries: status.reconnectFailures,
            reconnects: status.reconnects,
            reconnectP50: Math.round(status.reconnectReadyMs.p50),
            reconnectP99: Math.round(status.reconnectReadyMs.p99),
            serverCloses,
            postErrors,
            rate: Math.round(v.expected / pace.seconds),
            seconds,
            result: pass ? 'pass' : 'FAIL',
          },
        ],
        details: { verification: v, clientStatus: status, pace, plan: { posts, fanout, seed: SEED } },
      };
    } catch (e) {
      process.exitCode = 1;
      process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
      if (fleet) process.stderr.write(`client process log:\n${fleet.logTail()}\n`);
      throw e;
    } finally {
      clearInterval(progress);
      await fleet?.stop();
      await client.close();
      await herald.cleanup();
    }
  },
};
