/**
 * Herald as an operator runs it, for tests: a child process (`node --import tsx src/cli.ts start`)
 * with exactly the given environment, so that settings read at process start (NODE_EXTRA_CA_CERTS:
 * the CAs outgoing HTTPS trusts) apply as they do in production.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually } from './herald.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface HeraldChild {
  process: ChildProcess;
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `herald start` with `env` (and PATH, HOME) and waits for its banner. */
export async function startHeraldChild(env: Record<string, string>): Promise<HeraldChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  child.stderr?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let url: string;
  try {
    url = await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`herald exited (${child.exitCode}): ${out}`);
        return /Herald is listening on (http:\/\/\S+)/.exec(out)?.[1];
      },
      'herald to listen',
      60_000,
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    process: child,
    url,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
