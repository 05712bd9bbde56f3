/**
 * The chaos scenarios (chaos/) at their short size: each starts its own cluster of Herald child
 * processes on a fresh database (pg-restart: a private PostgreSQL; the Redis ones: a private
 * Redis), disrupts it, and must end with a passing VERDICT line. A failing verdict fails the test
 * with that line, which names what went wrong; a scenario that could not run fails with why
 * (PostgreSQL or Redis missing: the support modules say how to start them).
 *
 * The Redis-mode scenarios (gateway-kill, redis-flush, redis-restart) run the distributed mode:
 * gateway-only processes reached by live frames through Redis; the `-streams` ones with the Redis
 * Streams bus, whose entries the disruption loses too.
 *
 * After each scenario no Herald process it started may still run (no orphans).
 */
import { describe, expect, it } from 'vitest';
import { SCENARIOS } from '../chaos/scenarios/index.ts';

const SCENARIO_TIMEOUT_MS = 240_000;

/** Pids of `herald start` processes that are children of this test process. */
async function orphans(): Promise<number[]> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile('pgrep', ['-P', String(process.pid), '-f', 'cli.ts start'], (_e, stdout) =>
      resolve(stdout.split('\n').filter(Boolean).map(Number)),
    );
  });
}

/** The end of what each process printed, when the scenario kept it (a failing verdict): why one died. */
function tails(details: Record<string, unknown>): string {
  const outputs = details['outputs'] as Record<string, string> | undefined;
  if (!outputs) return '';
  return Object.entries(outputs)
    .map(([name, out]) => `\n\n${name} printed, at the end:\n${out.slice(-1_500)}`)
    .join('');
}

describe('chaos scenarios (short)', () => {
  for (const name of [
    'worker-kill',
    'pg-restart',
    'bulk-critical',
    'gateway-kill',
    'redis-flush',
    'redis-restart',
    'redis-flush-streams',
    'redis-restart-streams',
  ] as const) {
    it(
      name,
      async () => {
        const scenario = SCENARIOS[name];
        if (!scenario) throw new Error(`no scenario ${name} in chaos/scenarios/index.ts`);
        const lines: string[] = [];
        const result = await scenario('short', (line) => lines.push(line));
        expect(await orphans(), 'Herald processes left running').toEqual([]);
        expect(result.pass, `${result.line}\n\nprogress:\n${lines.join('\n')}${tails(result.details)}`).toBe(true);
      },
      SCENARIO_TIMEOUT_MS,
    );
  }
});
