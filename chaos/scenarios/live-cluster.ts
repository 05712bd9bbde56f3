/**
 * The distributed-mode run the Redis scenarios share (gateway-kill, redis-flush, redis-restart):
 * a private Redis (test/support/redis.ts) as REDIS_URL, 1 api, 2 workers, 1 scheduler and 2
 * gateway-only processes, the gateways behind the TCP balancer (gateway 1 gets 4 of every 5 new
 * connections), one SDK client per user connected through it, and a stream of notifications to
 * groups of 25 users (in-app, plus webhook to the counting receiver where the scenario asks).
 * Halfway through a third of the stream, the scenario's `disrupt` runs (kill a gateway, flush or
 * restart Redis).
 *
 * Before the stream, a probe: one in-app notification to every user must reach every client
 * within 10 s. Live frames reach gateway-only processes only through the Redis adapters; until
 * those are wired the probe fails, and the verdict says so at once instead of timing out later.
 *
 * What is checked: every user's client got seqs 1..n exactly once (n = the 202'd notifications
 * naming the user, plus the probe), every webhook delivery arrived (by webhook-id; duplicates at
 * most what was in flight at the disruption), every client is connected at the end, and no Herald
 * process restarted except the one the scenario killed.
 */
import { type PrivateRedis, privateRedis } from '../../test/support/redis.ts';
import {
  type Balancer,
  ChaosApi,
  type Cluster,
  inFlight,
  type ScenarioResult,
  type SdkFleet,
  type Size,
  sleep,
  startBalancer,
  startCluster,
  startCountingReceiver,
  startSdkFleet,
  unseenDeliveries,
  until,
  type VerdictInput,
  verdict,
} from '../lib.ts';

const SIZES = {
  full: { users: 625, streamMs: 30_000, postsPerSecond: 10 }, // 500 of them on gateway 1
  short: { users: 100, streamMs: 10_000, postsPerSecond: 10 },
};
const GROUP = 25;
const ENV = { HERALD_LEASE_MS: '10000', HERALD_WEBHOOK_TIMEOUT_MS: '8000', HERALD_WS_HEARTBEAT_MS: '5000' };

export interface LiveRun {
  cluster: Cluster;
  redis: PrivateRedis;
  balancer: Balancer;
  fleet: SdkFleet;
}

export interface LiveScenario {
  name: string;
  /** Whether each notification also goes out by webhook (the bus carries it). */
  webhooks: boolean;
  /** The disruption; resolves with facts for the verdict line and names of processes it restarted on purpose. */
  disrupt(
    run: LiveRun,
    log: (line: string) => void,
  ): Promise<{ facts: Record<string, string | number>; killed: string[] }>;
  /** Checks of its own, after the stream settled. */
  checks?(run: LiveRun): VerdictInput['checks'];
}

export async function runLive(
  s: LiveScenario,
  size: Size,
  log: (line: string) => void,
  /** Settings on top of the scenario's own (e.g. HERALD_BUS=redis-streams). */
  extraEnv: Record<string, string> = {},
): Promise<ScenarioResult> {
  const z = SIZES[size];
  const name = extraEnv.HERALD_BUS ? `${s.name} (bus ${extraEnv.HERALD_BUS})` : s.name;
  const redis = await privateRedis();
  const receiver = await startCountingReceiver();
  let cluster: Cluster | null = null;
  let balancer: Balancer | null = null;
  let fleet: SdkFleet | null = null;
  let api: ChaosApi | null = null;
  try {
    log(`private Redis on port ${redis.port}; starting 1 api, 2 workers, 1 scheduler, 2 gateway-only`);
    cluster = await startCluster({
      api: 1,
      worker: 2,
      scheduler: 1,
      gateway: 2,
      redisUrl: redis.url,
      env: { ...ENV, ...extraEnv },
      log,
    });
    const c = cluster;
    const gateways = c.withRole('gateway');
    balancer = await startBalancer(gateways.map((g, i) => ({ name: g.name, port: g.port, weight: i === 0 ? 4 : 1 })));
    api = new ChaosApi(c.withRole('api').map((p) => p.url));
    const a = api;
    const users = Array.from({ length: z.users }, (_, i) => `u-${i}`);
    await a.putUsers(users, () => ({ webhookUrl: receiver.url }));
    log(`connecting ${users.length} SDK clients through the balancer`);
    fleet = await startSdkFleet({ url: balancer.url, users, token: (u) => a.token(u) });
    const f = fleet;
    const run: LiveRun = { cluster: c, redis, balancer, fleet: f };
    const pids = new Map(c.processes.map((p) => [p.name, p.pid()]));
    log(`clients per gateway: ${JSON.stringify(Object.fromEntries(balancer.open()))}`);

    // The probe: one in-app notification to every user, live within 10 s.
    const expected = new Map(users.map((u) => [u, 0]));
    for (let i = 0; i < users.length; i += 1_000) {
      const to = users.slice(i, i + 1_000);
      await a.send({ to, category: 'chaos.probe', channels: ['in_app'], title: 'probe' });
      for (const u of to) expected.set(u, 1);
    }
    const probed = await until(() => users.every((u) => (f.seen.get(u)?.get(1) ?? 0) > 0), 10_000, 100);
    if (!probed) {
      const got = users.filter((u) => (f.seen.get(u)?.get(1) ?? 0) > 0).length;
      const said = /"msg":"(REDIS_URL is set[^"]*)"/.exec(c.processes.map((p) => p.output()).join('\n'))?.[1];
      const v = verdict({
        scenario: name,
        sent: users.length,
        delivered: got,
        lost: users.length - got,
        duplicated: 0,
        checks: [
          {
            ok: false,
            failure:
              `live frames do not reach gateway-only processes: ${got} of ${users.length} clients got the probe ` +
              `within 10 s (the Redis LiveFrames adapter is not wired${said ? `; Herald says: "${said}"` : ''})`,
          },
        ],
      });
      return { ...v, details: { probed: got, outputs: c.outputs() } };
    }

    log(`streaming ${z.postsPerSecond} POSTs/s for ${z.streamMs / 1000} s (groups of ${GROUP} users)`);
    const accepted: string[] = [];
    let failedPosts = 0;
    const groups = Math.ceil(users.length / GROUP);
    const total = Math.round((z.streamMs / 1000) * z.postsPerSecond);
    const start = Date.now();
    const posts: Promise<void>[] = [];
    let disruption: ReturnType<LiveScenario['disrupt']> | null = null;
    let flying = 0;
    for (let i = 0; i < total; i++) {
      const wait = start + (i * 1000) / z.postsPerSecond - Date.now();
      if (wait > 0) await sleep(wait);
      if (i === Math.floor(total / 3)) {
        flying = await inFlight(c).catch(() => 0);
        log(`disrupting (${s.name}) after ${i} POSTs, ${flying} deliveries in flight`);
        disruption = s.disrupt(run, log);
      }
      const to = users.slice((i % groups) * GROUP, (i % groups) * GROUP + GROUP);
      posts.push(
        a
          .send({
            to,
            category: `chaos.${s.name}`,
            channels: s.webhooks ? ['in_app', 'webhook'] : ['in_app'],
            title: `#${i}`,
          })
          .then(
            (id) => {
              accepted.push(id);
              for (const u of to) expected.set(u, (expected.get(u) ?? 0) + 1);
            },
            () => {
              failedPosts++;
            },
          ),
      );
    }
    await Promise.all(posts);
    const disrupted = (await disruption) ?? { facts: {}, killed: [] as string[] };
    log(`${accepted.length} of ${total} POSTs accepted; waiting for every client to hold every seq`);
    const settled = () => f.tally(expected).lost === 0;
    await until(settled, 60_000, 250);
    const webhookExpected = s.webhooks ? accepted.length * GROUP : 0;
    let webhook = { stored: 0, unseen: [] as string[] };
    if (s.webhooks) {
      await until(
        async () => {
          webhook = await unseenDeliveries(c, receiver, accepted);
          return webhook.unseen.length === 0 && webhook.stored >= webhookExpected;
        },
        60_000,
        500,
      );
    }
    const seqs = f.tally(expected);
    const restarted = c.processes.filter((p) => !disrupted.killed.includes(p.name) && p.pid() !== pids.get(p.name));
    const v = verdict({
      scenario: name,
      sent: seqs.sent + webhookExpected,
      delivered: seqs.delivered + receiver.delivered(),
      lost: seqs.lost + webhook.unseen.length + Math.max(0, webhookExpected - webhook.stored),
      duplicated: seqs.duplicated + receiver.duplicated(),
      ...(s.webhooks ? { duplicateBound: { max: flying, why: 'webhooks in flight at the disruption' } } : {}),
      facts: {
        seqs: `${seqs.delivered}/${seqs.sent}`,
        ...(s.webhooks ? { webhooks: `${receiver.delivered()}/${webhookExpected}` } : {}),
        resent: f.resent(),
        reconnects: f.reconnects(),
        ...disrupted.facts,
      },
      checks: [
        { ok: seqs.duplicated === 0, failure: `${seqs.duplicated} seqs handed to the app twice` },
        { ok: failedPosts === 0, failure: `${failedPosts} POSTs failed` },
        { ok: f.openCount() === users.length, failure: `${users.length - f.openCount()} clients not connected` },
        { ok: restarted.length === 0, failure: `restarted or died: ${restarted.map((p) => p.name).join(', ')}` },
        { ok: receiver.badSignatures() === 0, failure: `${receiver.badSignatures()} bad signatures` },
        ...(s.checks?.(run) ?? []),
      ],
    });
    return { ...v, details: { expected: seqs, webhook, ...(v.pass ? {} : { outputs: c.outputs() }) } };
  } catch (e) {
    if (cluster) for (const p of cluster.processes) log(`--- ${p.name} output (tail)\n${p.output().slice(-3_000)}`);
    throw e;
  } finally {
    fleet?.close();
    await api?.close();
    await cluster?.stop();
    await balancer?.close();
    await receiver.close();
    await redis.cleanup();
  }
}
