/**
 * One process per embedded data directory. PGlite keeps no lock of its own, and two processes
 * writing the same folder would corrupt it; so the embedded store takes a lock file beside the
 * folder (`<dir>.lock`, holding the owner's pid) before it opens the database, and refuses to
 * start while that pid is alive.
 *
 * Owning the folder exclusively also tells Herald something useful after a crash: every lease it
 * finds at start-up was held by a process that is gone, so that work can go back to the queue at
 * once instead of waiting for the leases to run out.
 *
 * A lock left by a dead process (SIGKILL, power loss) is taken over. A process that has exited but
 * not yet been reaped by its parent (a zombie: for a moment after a SIGKILL, or for ever under a
 * parent that never waits) counts as dead — it holds nothing any more, and `kill(pid, 0)` alone
 * would say it is alive. Its state is read from `/proc/<pid>/stat` (`Z` zombie, `X` dead) where
 * there is a /proc (Linux), else from `ps -o stat=` (macOS, the BSDs). A live owner always blocks.
 * The check is by pid, so a stale lock whose pid now belongs to an unrelated process stops start-up
 * with a message naming the file to delete; a lock holding our own pid is stale (a container
 * restarts as the same pid).
 * Two processes that find the same stale lock within microseconds of each other could both take
 * it over: start one Herald per folder, not two at once after a crash.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dir: string): DataDirLock {
  const file = `${dir}.lock`;
  mkdirSync(dirname(file), { recursive: true });
  // The pid is written to a file of our own first and then linked into place: link fails if the
  // lock exists, and a lock never exists without its pid (no window in which another process
  // would read an empty lock and take it for a stale one).
  const mine = `${file}.${process.pid}`;
  writeFileSync(mine, `${process.pid}\n`);
  try {
    for (let tries = 0; ; tries++) {
      try {
        linkSync(mine, file);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= 3) throw e;
      }
      checkStale(file, dir);
    }
  } finally {
    rmIfPresent(mine);
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      if (readFileOrEmpty(file).trim() === String(process.pid)) rmIfPresent(file);
    },
  };
}

/** Throws if the lock's pid is alive; otherwise removes the stale lock. */
function checkStale(file: string, dir: string): void {
  const owner = Number.parseInt(readFileOrEmpty(file), 10);
  if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
    throw new Error(
      `the data directory ${dir} is in use by process ${owner}; stop it first ` +
        `(if no Herald is running, delete ${file})`,
    );
  }
  rmIfPresent(file);
}

/** Whether `pid` is a running process: it exists and has not exited (a zombie has). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = processState(pid);
  return state !== 'Z' && state !== 'X';
}

/**
 * The one-letter state of `pid` (`R`, `S`, `D`, `T`, `Z`, `X`, …), or null when it cannot be told
 * (then the process is taken as alive: refusing to start is the safe mistake).
 */
export function processState(pid: number): string | null {
  try {
    // "pid (comm) S ...": comm may hold spaces and parentheses, so the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 1).trim()[0] ?? null;
  } catch (e) {
    // ENOENT with a /proc present: the process is gone between the two checks.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat')) return 'X';
  }
  const ps = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8', timeout: 5_000 });
  if (ps.status === 0) return ps.stdout.trim()[0] ?? null;
  // ps exits 1 when no such process exists.
  return ps.status === 1 && ps.stdout.trim() === '' ? 'X' : null;
}

function readFileOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function rmIfPresent(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
