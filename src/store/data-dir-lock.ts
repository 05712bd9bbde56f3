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
 * the file to delete.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(dir: string): DataDirLock {
  const file = `${dir}.lock`;
  mkdirSync(dirname(file), { recursive: true });
  for (let tries = 0; ; tries++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= 3) throw e;
    }
    const owner = Number.parseInt(readFileOrEmpty(file), 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      throw new Error(
        `the data directory ${dir} is in use by process ${owner}; stop it first ` +
          `(if no Herald is running, delete ${file})`,
      );
    }
    rmIfPresent(file);
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
