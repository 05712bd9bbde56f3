/** Every chaos scenario by the name `npm run chaos -- <name>` takes. */
import type { Scenario } from '../lib.ts';
import { bulkCritical } from './bulk-critical.ts';
import { pgRestart } from './pg-restart.ts';
import {
  gatewayKillScenario,
  redisFlushScenario,
  redisFlushStreamsScenario,
  redisRestartScenario,
  redisRestartStreamsScenario,
} from './redis-scenarios.ts';
import { workerKill } from './worker-kill.ts';

export const SCENARIOS: Record<string, Scenario> = {
  'worker-kill': workerKill,
  'pg-restart': pgRestart,
  'bulk-critical': bulkCritical,
  'gateway-kill': gatewayKillScenario,
  'redis-flush': redisFlushScenario,
  'redis-restart': redisRestartScenario,
  'redis-flush-streams': redisFlushStreamsScenario,
  'redis-restart-streams': redisRestartStreamsScenario,
};
