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
 * A lock left by a dead process (SIGKILL, power loss) is taken over. The check is by pid, so a
 * stale lock whose pid now belongs to an unrelated process stops start-up with a message naming
 * the file to delete; a lock holding our own pid is stale (a container restarts as the same pid).
 * Two processes that find the same stale lock within microseconds of each other could both take
 * it over: start one Herald per folder, not two at once after a crash.
 */
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
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
