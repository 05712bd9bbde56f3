/**
 * How late this machine wakes an idle process up, measured while a scenario runs: a separate
 * Node process that does nothing but a 1 ms timer reports its event-loop delay. Whatever it sees
 * (CPU contention, the hypervisor) every process on a latency path pays at each wake-up too, so
 * it is the floor under a latency tail measured here, apart from anything Herald does.
 */
import { type ChildProcess, spawn } from 'node:child_process';

const PROBE = `
const { monitorEventLoopDelay } = require('node:perf_hooks');
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
process.on('message', () => {
  h.disable();
  // The histogram holds the intervals between runs of the 1 ms timer: lateness is what exceeds 1 ms.
  const late = (ns) => Math.max(0, ns / 1e6 - 1);
  process.send({ p99: late(h.percentile(99)), p999: late(h.percentile(99.9)), max: late(h.max) }, () => process.exit(0));
});
`;

export interface Jitter {
  /** How late the idle probe's 1 ms timer ran, ms. */
  p99: number;
  p999: number;
  max: number;
}

export interface JitterProbe {
  /** Stops the probe and returns what it saw since it started. */
  stop(): Promise<Jitter>;
}

export async function startJitterProbe(): Promise<JitterProbe> {
  const child: ChildProcess = spawn(process.execPath, ['-e', PROBE], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return {
    stop: () =>
      new Promise<Jitter>((resolve, reject) => {
        child.once('message', (m) => resolve(m as Jitter));
        child.once('exit', (code) => reject(new Error(`the jitter probe exited (${code}) without an answer`)));
        child.send('stop');
      }),
  };
}
