import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { isAlive, lockDataDir, processState } from './data-dir-lock.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const base = mkdtempSync(join(tmpdir(), 'herald-lock-'));
  dirs.push(base);
  return join(base, 'data', 'pgdata');
}

it('writes its pid beside the folder and removes the file on release', () => {
  const dir = dataDir();
  const lock = lockDataDir(dir);
  expect(readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(process.pid));
  expect(readdirSync(dirname(dir))).toEqual(['pgdata.lock']);
  lock.release();
  expect(existsSync(`${dir}.lock`)).toBe(false);
  lock.release();
});

it('refuses a folder whose lock holds a live pid, and takes it over once that process is gone', async () => {
  const dir = dataDir();
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
  try {
    await new Promise((resolve) => other.once('spawn', resolve));
    lockDataDir(dir).release();
    writeFileSync(`${dir}.lock`, `${other.pid}\n`);
    expect(() => lockDataDir(dir)).toThrow(`in use by process ${other.pid}`);
    expect(readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(other.pid));
  } finally {
    other.kill('SIGKILL');
    await new Promise((resolve) => other.once('exit', resolve));
  }
  const lock = lockDataDir(dir);
  expect(readFileSync(`${dir}.lock`, 'utf8').trim()).toBe(String(process.pid));
  lock.release();
});

it('takes over a lock file that holds no pid', () => {
  const dir = dataDir();
  lockDataDir(dir).release();
  writeFileSync(`${dir}.lock`, 'garbage');
  lockDataDir(dir).release();
  expect(existsSync(`${dir}.lock`)).toBe(false);
});

it('tells a running process from one that is gone', async () => {
  expect(processState(process.pid)).toMatch(/^[RS]$/);
  expect(isAlive(process.pid)).toBe(true);
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  // Reaped by Node: no such process any more.
  expect(processState(child.pid as number)).toBe('X');
  expect(isAlive(child.pid as number)).toBe(false);
});
