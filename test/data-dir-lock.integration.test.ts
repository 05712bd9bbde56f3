/**
 * The data-directory lock against real processes: an owner that was SIGKILLed and never reaped (a
 * zombie) must not block a restart; a live owner must.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { lockDataDir, processState } from '../src/store/data-dir-lock.ts';
import { eventually } from './support/herald.ts';

const LOCK_MODULE = fileURLToPath(new URL('../src/store/data-dir-lock.ts', import.meta.url));

/** Node code that takes the lock on `dir`, prints "locked <pid>" and then waits for ever. */
const holderScript = (dir: string) =>
  `import { lockDataDir } from ${JSON.stringify(LOCK_MODULE)};
   lockDataDir(${JSON.stringify(dir)});
   process.stdout.write('locked ' + process.pid + '\\n');
   setInterval(() => {}, 60_000);`;

const holderArgs = (dir: string) => ['--import', 'tsx', '--input-type=module', '-e', holderScript(dir)];

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

function dataDir(): string {
  const base = mkdtempSync(join(tmpdir(), 'herald-lock-int-'));
  cleanup.push(() => rmSync(base, { recursive: true, force: true }));
  return join(base, 'pgdata');
}

function track(p: ChildProcess): ChildProcess {
  cleanup.push(() => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  return p;
}

/** Resolves with the pid the holder prints once it holds the lock. */
function lockedPid(p: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    p.stderr?.on('data', (d) => {
      err += d;
    });
    p.stdout?.on('data', (d) => {
      out += d;
      const m = /locked (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    p.once('exit', (code) => reject(new Error(`holder exited (${code}) before taking the lock: ${err}`)));
  });
}

it('takes over the lock of an owner that was SIGKILLed and is still a zombie (never reaped)', async () => {
  const dir = dataDir();
  // The holder's parent is `sh`, which then becomes `sleep`: nothing ever waits for the holder, so
  // after SIGKILL it stays a zombie for as long as `sleep` lives.
  const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
  const cmd = `${[process.execPath, ...holderArgs(dir)].map(quote).join(' ')} & exec sleep 600`;
  const parent = track(spawn('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const holder = await lockedPid(parent);
  expect(readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(holder));
  expect(() => lockDataDir(dir)).toThrow(`in use by process ${holder}`);

  process.kill(holder, 'SIGKILL');
  await eventually(() => processState(holder) === 'Z', `process ${holder} to become a zombie`);
  // kill(pid, 0) still succeeds on it: the pid exists.
  expect(() => process.kill(holder, 0)).not.toThrow();

  const lock = lockDataDir(dir);
  // Still a zombie at this moment: the takeover did not wait for a reaper.
  expect(processState(holder)).toBe('Z');
  expect(readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(process.pid));
  lock.release();
});

it('refuses to start while the owner is alive, naming its pid and the lock file', async () => {
  const dir = dataDir();
  const holder = track(spawn(process.execPath, holderArgs(dir), { stdio: ['ignore', 'pipe', 'pipe'] }));
  const pid = await lockedPid(holder);
  expect(pid).toBe(holder.pid);
  expect(processState(pid)).toMatch(/^[RSD]$/);
  let error: Error | undefined;
  try {
    lockDataDir(dir).release();
  } catch (e) {
    error = e as Error;
  }
  expect(error?.message).toContain(`in use by process ${pid}`);
  expect(error?.message).toContain(`${dir}.lock`);
  // The refusal left the owner's lock alone.
  expect(readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(pid));

  holder.kill('SIGKILL');
  await new Promise((resolve) => holder.once('exit', resolve));
  lockDataDir(dir).release();
});
