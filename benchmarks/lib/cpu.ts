/**
 * CPU time spent by Herald and by its PostgreSQL backends: on a shared machine throughput moves
 * with everybody else's load, but CPU time per request mostly does not, so it is the steadier
 * figure for comparing two versions of the code.
 */
import { readFile } from 'node:fs/promises';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime of a process in ms (0 when it is gone or /proc is unavailable). */
export async function processCpuMs(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** CPU ms of each process, by pid. */
export async function cpuByPid(pids: readonly number[]): Promise<Map<number, number>> {
  return new Map(await Promise.all(pids.map(async (p) => [p, await processCpuMs(p)] as const)));
}

/** CPU used between two snapshots by the processes of the second (a process new in `after` counts from 0). */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0;
  for (const [pid, t] of after) ms += t - (before.get(pid) ?? 0);
  return ms;
}
