/**
 * worker-kill: workers die mid-flow (SIGKILL, no chance to record anything) and nothing is lost.
 *
 * Cluster: 2 api, 2 workers, 1 scheduler on a fresh PostgreSQL database. Full size: 100 users whose
 * webhookUrl is the counting receiver, 200 notifications to all of them (20,000 webhook
 * deliveries); while they are delivered a worker is SIGKILLed three times (worker 1, 2, 1, at a
 * quarter, half and three quarters of the deliveries) and restarted each time. Just before each
 * kill the store's `processing` deliveries are counted: the most the kill can leave sent but not
 * recorded (it counts both workers', so it bounds the killed one's).
 *
 * Verdict: once the store says every delivery is sent, every delivery's webhook-id reached the
 * receiver (lost = 0), the duplicates are at most the sum of those in-flight counts, each
 * duplicate is a repeat of a webhook-id (none came under a second id), every signature verified,
 * and each kill happened while work was still open (else it proved nothing).
 */
import {
  ChaosApi,
  type Cluster,
  type CountingReceiver,
  forEachLimit,
  inFlight,
  open,
  type Scenario,
  type StateCounts,
  startCluster,
  startCountingReceiver,
  stateCounts,
  unseenDeliveries,
  until,
  verdict,
  waitUntilSettled,
} from '../lib.ts';

const SIZES = {
  full: { users: 100, notifications: 200, kills: 3, settleMs: 240_000 },
  short: { users: 50, notifications: 40, kills: 1, settleMs: 90_000 },
};

/**
 * A short lease so that a dead worker's deliveries come back within seconds (the scheduler
 * reclaims expired leases every lease/4); the webhook timeout must leave room in it, and stays far
 * above the receiver's answer time so that no send times out (a timeout would be a duplicate that
 * has nothing to do with the kills).
 */
const ENV = { HERALD_LEASE_MS: '10000', HERALD_WEBHOOK_TIMEOUT_MS: '8000' };

export const workerKill: Scenario = async (size, log) => {
  const s = SIZES[size];
  const receiver = await startCountingReceiver();
  let cluster: Cluster | null = null;
  let api: ChaosApi | null = null;
  try {
    log(`starting 2 api, 2 workers, 1 scheduler`);
    cluster = await startCluster({ api: 2, worker: 2, scheduler: 1, env: ENV, log });
    const c = cluster;
    api = new ChaosApi(c.withRole('api').map((p) => p.url));
    const users = Array.from({ length: s.users }, (_, i) => `u-${i}`);
    await api.putUsers(users, () => ({ webhookUrl: receiver.url }));
    const expected = s.users * s.notifications;
    log(`posting ${s.notifications} notifications × ${s.users} recipients = ${expected} webhook deliveries`);
    const accepted: string[] = [];
    const posting = forEachLimit(
      Array.from({ length: s.notifications }, (_, i) => i),
      4,
      async (i) => {
        accepted.push(
          await (api as ChaosApi).send({
            to: users,
            category: 'chaos.worker-kill',
            channels: ['webhook'],
            title: `worker-kill #${i}`,
            data: { i },
          }),
        );
      },
    );
    const kills = await killDuringFlow(c, receiver, expected, s.kills, log);
    await posting;
    log(`waiting until the store says all ${expected} deliveries are sent`);
    const counts = await waitUntilSettled(c, expected, s.settleMs);
    const { stored, unseen } = await unseenDeliveries(c, receiver);
    const lost = unseen.length + Math.max(0, expected - stored);
    const bound = kills.reduce((a, k) => a + k.inFlight, 0);
    const v = verdict({
      scenario: 'worker-kill',
      sent: expected,
      delivered: receiver.delivered(),
      lost,
      duplicated: receiver.duplicated(),
      duplicateBound: { max: bound, why: `in flight at ${kills.length} kill${kills.length === 1 ? '' : 's'}` },
      facts: { states: JSON.stringify(counts) },
      checks: [
        { ok: accepted.length === s.notifications, failure: `${accepted.length} of ${s.notifications} POSTs 202` },
        { ok: (counts.sent ?? 0) === expected, failure: `store: ${JSON.stringify(counts)}, not all sent` },
        { ok: receiver.splitIds() === 0, failure: `${receiver.splitIds()} repeats under a second webhook-id` },
        { ok: receiver.badSignatures() === 0, failure: `${receiver.badSignatures()} bad signatures` },
        { ok: kills.length === s.kills, failure: `${kills.length} of ${s.kills} kills happened` },
        ...kills.map((k, i) => ({
          ok: k.openAtKill > 0,
          failure: `kill #${i + 1} came after the flow ended (nothing open): make the run bigger`,
        })),
        ...kills.map((k, i) => ({ ok: k.signal === 'SIGKILL', failure: `kill #${i + 1} ended with ${k.signal}` })),
      ],
    });
    return {
      ...v,
      details: {
        expected,
        kills,
        counts,
        stored,
        unseen: unseen.slice(0, 20),
        requests: receiver.requests(),
        ...(v.pass ? {} : { outputs: cluster.outputs() }),
      },
    };
  } catch (e) {
    if (cluster) for (const p of cluster.processes) log(`--- ${p.name} output (tail)\n${p.output().slice(-3_000)}`);
    throw e;
  } finally {
    await api?.close();
    await cluster?.stop();
    await receiver.close();
  }
};

interface Kill {
  process: string;
  pid: number | undefined;
  /** Receiver's distinct arrivals at the kill. */
  deliveredAtKill: number;
  /** Deliveries `processing` in the store just before the kill. */
  inFlight: number;
  /** Deliveries pending or processing just before the kill. */
  openAtKill: number;
  signal: string;
}

/** SIGKILLs a worker each time the receiver passes another 1/(kills+1) of `expected`, restarting it each time. */
async function killDuringFlow(
  cluster: Cluster,
  receiver: CountingReceiver,
  expected: number,
  kills: number,
  log: (line: string) => void,
): Promise<Kill[]> {
  const workers = cluster.withRole('worker');
  const done: Kill[] = [];
  let restarting: Promise<void> = Promise.resolve();
  for (let k = 0; k < kills; k++) {
    const threshold = Math.floor((expected * (k + 1)) / (kills + 1));
    await until(() => receiver.delivered() >= threshold, 120_000, 20);
    // A worker that is still starting cannot die mid-flow: wait for the previous restart.
    await restarting;
    const victim = workers[k % workers.length];
    if (!victim) break;
    let counts: StateCounts = {};
    let flying = 0;
    [flying, counts] = await Promise.all([inFlight(cluster), stateCounts(cluster, 'webhook')]);
    const pid = victim.pid();
    const deliveredAtKill = receiver.delivered();
    await victim.kill('SIGKILL');
    // Rows claimed between the count and the kill are still `processing` right after it (nobody
    // records them until the lease runs out): the larger count bounds what the kill left unrecorded.
    flying = Math.max(flying, await inFlight(cluster));
    const signal = /signal=(\w+)\n$/.exec(victim.output())?.[1] ?? 'unknown';
    log(`kill #${k + 1}: SIGKILL ${victim.name} (pid ${pid}) at ${deliveredAtKill} delivered, ${flying} in flight`);
    done.push({
      process: victim.name,
      pid,
      deliveredAtKill,
      inFlight: flying,
      openAtKill: open(counts),
      signal,
    });
    restarting = victim.restart();
  }
  await restarting;
  return done;
}
