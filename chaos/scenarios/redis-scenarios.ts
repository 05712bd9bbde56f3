/**
 * The distributed-mode scenarios, on the run of live-cluster.ts:
 * - gateway-kill: gateway 1 (4 of 5 clients) is SIGKILLed mid-stream and stays dead; every
 *   client reconnects through the balancer to gateway 2 and ends with every seq exactly once.
 * - redis-flush: FLUSHALL on the private Redis mid-stream; nothing lost, no Herald restart.
 * - redis-restart: the private Redis stops for 3 s and starts again (empty) mid-stream; same verdict.
 */
import type { Scenario } from '../lib.ts';
import { type LiveScenario, runLive } from './live-cluster.ts';

const gatewayKill: LiveScenario = {
  name: 'gateway-kill',
  webhooks: false,
  async disrupt({ cluster, balancer }, log) {
    const [victim] = cluster.withRole('gateway');
    if (!victim) throw new Error('no gateway to kill');
    const before = balancer.open().get(victim.name) ?? 0;
    await victim.kill('SIGKILL');
    log(`SIGKILLed ${victim.name}, which held ${before} clients`);
    return { facts: { [`clients on ${victim.name} at kill`]: before }, killed: [victim.name] };
  },
  checks({ cluster, balancer }) {
    const [dead, other] = cluster.withRole('gateway');
    const open = balancer.open();
    return [
      { ok: (open.get(dead?.name ?? '') ?? 0) === 0, failure: 'clients still routed to the dead gateway' },
      { ok: other?.alive() === true, failure: 'the surviving gateway died' },
    ];
  },
};

const redisFlush: LiveScenario = {
  name: 'redis-flush',
  webhooks: true,
  async disrupt({ redis }, log) {
    const client = redis.client();
    const keys = await client.dbsize();
    await client.flushall();
    log(`FLUSHALL (${keys} keys)`);
    return { facts: { 'keys flushed': keys }, killed: [] };
  },
};

const redisRestart: LiveScenario = {
  name: 'redis-restart',
  webhooks: true,
  async disrupt({ redis }, log) {
    await redis.stop();
    log('Redis stopped');
    await new Promise((r) => setTimeout(r, 3_000));
    await redis.start();
    log('Redis started again (empty)');
    return { facts: { 'redis down': '3s' }, killed: [] };
  },
};

export const gatewayKillScenario: Scenario = (size, log) => runLive(gatewayKill, size, log);
export const redisFlushScenario: Scenario = (size, log) => runLive(redisFlush, size, log);
export const redisRestartScenario: Scenario = (size, log) => runLive(redisRestart, size, log);

/**
 * The same two disruptions with the Redis Streams bus (HERALD_BUS=redis-streams), where Redis holds
 * the bus's entries too: what a flush or a restart loses, the scheduler's reconciler re-announces
 * (HERALD_RECONCILE_OVERDUE_MS, shortened here so that the short run does not wait 30 s).
 */
const STREAMS = { HERALD_BUS: 'redis-streams', HERALD_RECONCILE_OVERDUE_MS: '3000' };
export const redisFlushStreamsScenario: Scenario = (size, log) => runLive(redisFlush, size, log, STREAMS);
export const redisRestartStreamsScenario: Scenario = (size, log) => runLive(redisRestart, size, log, STREAMS);
