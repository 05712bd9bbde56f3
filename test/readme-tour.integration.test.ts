/**
 * The README's one-minute tour works as written: Herald is started with the tour's own command
 * (`npm start` in a child process, on a temporary data folder and free ports), the tour's bash
 * block is run as it stands, and each step's output is what the tour says it is.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/herald.ts';

/** The tour section of the README: its start command and its bash block. */
function tour(): { start: string; script: string } {
  const readme = readFileSync('README.md', 'utf8');
  const from = readme.indexOf('## A one-minute tour');
  const section = readme.slice(from, readme.indexOf('\n## ', from + 1));
  const start = /```sh\n([^\n]*npm start[^\n]*)\n```/.exec(section)?.[1];
  const script = /```bash\n([\s\S]*?)\n```/.exec(section)?.[1];
  if (from < 0 || !start || !script) throw new Error('README.md: no tour (a ```sh npm start line and a ```bash block)');
  return { start, script };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

function run(
  command: string,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the tour did not finish within ${timeoutMs} ms; output so far:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));

describe('the README tour', () => {
  const { start, script } = tour();
  let herald: ChildProcess;
  let heraldLog = '';
  let dataDir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'herald-tour-'));
    env = { PORT: String(await freePort()), HOOK_PORT: String(await freePort()), HERALD_DATA_DIR: dataDir };
    // Its own process group, so that npm and the Herald it starts are stopped together.
    herald = spawn('bash', ['-c', start], { env: { ...process.env, ...env }, detached: true });
    herald.stdout?.on('data', (d: Buffer) => {
      heraldLog += d;
    });
    herald.stderr?.on('data', (d: Buffer) => {
      heraldLog += d;
    });
    await eventually(
      async () => {
        if (herald.exitCode !== null) throw new Error(`Herald exited (${herald.exitCode}):\n${heraldLog}`);
        const r = await fetch(`http://127.0.0.1:${env.PORT}/readyz`).catch(() => null);
        return r?.status === 200;
      },
      `Herald started with "${start}" to be ready`,
      90_000,
    );
  }, 120_000);

  afterAll(async () => {
    if (herald?.pid && herald.exitCode === null) {
      const exited = new Promise((r) => herald.on('exit', r));
      process.kill(-herald.pid, 'SIGTERM');
      await exited;
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts Herald with the egress allowance the webhook step needs', () => {
    expect(start).toMatch(/HERALD_EGRESS_ALLOW=127\.0\.0\.1\/32 .*npm start/);
  });

  it('runs step by step with the output each step promises', async () => {
    // A marker before each numbered step, to tell the steps' outputs apart.
    const marked = script.replace(/^# (\d)\. /gm, (line, n) => `echo "@@step ${n}"\n${line}`);
    const { code, stdout, stderr } = await run(marked, env, 120_000);
    const context = `stdout:\n${stdout}\nstderr:\n${stderr}\nHerald:\n${heraldLog}`;
    expect(code, context).toBe(0);
    expect(stderr, context).not.toMatch(/curl:|Error|not found/);
    const steps = stdout.split(/^@@step (\d)\n/m);
    expect(steps[0], 'the prelude prints nothing').toBe('');
    const step = (n: number) => steps[steps.indexOf(String(n)) + 1] ?? '';
    expect(steps.filter((_, i) => i % 2 === 1)).toEqual(['1', '2', '3', '4', '5', '6']);

    // 1. The 202 answer, its id captured.
    const [sent] = jsonLines(step(1));
    expect(sent).toMatchObject({ status: 'accepted', recipients: 1 });
    const id = sent.id as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    // 2. The same notification, followed by that id.
    const [followed] = jsonLines(step(2));
    expect(followed.id, context).toBe(id);
    expect(followed.deliveries).toEqual([expect.objectContaining({ userId: 'alice', channel: 'in_app' })]);
    expect(followed.timeline[0].event).toBe('accepted');

    // 3. The inbox, then marked read.
    const [inbox, read] = jsonLines(step(3));
    expect(inbox.items.map((i: any) => i.title)).toEqual(['New reply']);
    expect(inbox.unreadCount).toBe(1);
    expect(read).toEqual({ unreadCount: 0 });

    // 4. Bob's receiver got the signed webhook; Carol's failing one ended as a dead letter.
    const four = step(4);
    // The receiver prints on stderr: a line of its own, never inside one of curl's answers.
    expect(stderr, context).toMatch(/^receiver: \/hook webhook-id [0-9a-f-]{36} \{"type":"notification"/m);
    const hook = stderr.split('\n').find((l) => l.startsWith('receiver: /hook')) as string;
    expect(JSON.parse(hook.slice(hook.indexOf('{')))).toMatchObject({ userId: 'bob', title: 'Invoice ready' });
    const dead = jsonLines(four).find((j) => j.items);
    expect(dead.items).toEqual([
      expect.objectContaining({
        userId: 'carol',
        channel: 'webhook',
        status: 'dead',
        attempts: 2,
        lastError: 'receiver answered HTTP 500',
      }),
    ]);

    // 5. Scheduled, and the retry with the same key answered the same.
    const [first, again] = jsonLines(step(5));
    expect(first).toMatchObject({ status: 'scheduled', recipients: 1 });
    expect(again).toEqual(first);

    // 6. The socket: ready, the missed notification replayed, then the live one.
    const frames = jsonLines(step(6)).filter((j) => j.type);
    expect(frames[0]).toMatchObject({ type: 'ready', userId: 'alice', lastSeq: 1 });
    const notes = frames.filter((f) => f.type === 'notification');
    expect(notes.map((n) => [n.seq, n.title])).toEqual([
      [1, 'New reply'],
      [2, 'Live!'],
    ]);
  }, 150_000);
});
