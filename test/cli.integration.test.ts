/**
 * The `herald` command as a user runs it: a child process (`node --import tsx src/cli.ts …`) with a
 * clean environment and a temporary data directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SETTINGS } from '../src/config.ts';
import { eventually } from './support/herald.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };

interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();
const dirs: string[] = [];

function herald(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HERALD_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString('utf8');
  });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs a command to its end; `timeoutMs` bounds a start-up that should fail. */
async function run(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000) {
  const h = herald(args, env);
  const timer = setTimeout(() => h.child.kill('SIGKILL'), timeoutMs);
  const code = await h.exited;
  clearTimeout(timer);
  return { code, stdout: h.stdout(), stderr: h.stderr() };
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'herald-cli-'));
  dirs.push(d);
  return d;
}

/** Starts `herald start` and waits for its banner; returns the URL it printed. */
async function started(env: Record<string, string>): Promise<Running & { url: string }> {
  const h = herald(['start'], env);
  let code: number | null | undefined;
  void h.exited.then((c) => {
    code = c;
  });
  const url = await eventually(
    () => {
      if (code !== undefined) throw new Error(`herald exited (${code}) before its banner:\n${h.stdout()}${h.stderr()}`);
      return /Herald is listening on (http:\/\/\S+)/.exec(h.stdout())?.[1];
    },
    'the start-up banner',
    90_000,
  );
  return { ...h, url };
}

async function stop(h: Running): Promise<number | null> {
  h.child.kill('SIGTERM');
  return h.exited;
}

afterEach(async () => {
  for (const c of [...children]) c.kill('SIGKILL');
});

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('herald CLI', () => {
  it('--version prints the package version', async () => {
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('start --help shows every setting with its default', async () => {
    const r = await run(['start', '--help']);
    expect(r.code).toBe(0);
    for (const s of SETTINGS) {
      expect(r.stdout).toContain(s.name);
      expect(r.stdout).toContain(`default: ${s.default}`);
    }
    expect(r.stdout).toMatch(/PORT\s+HTTP and WebSocket port\s+default: 8080/);
    expect(r.stdout).toMatch(/HOST\s+.*\s+default: 127\.0\.0\.1/);
  });

  it.each([
    [['--to', 'alice'], 'nothing to send: give --title, --body or --data'],
    [['--to', 'alice', '--data', '[1, 2]'], '--data: must be a JSON object'],
    [['--to', 'alice', '--data', '{"postId": '], '--data: not valid JSON'],
    [['--to', 'alice', '--title', 'Hi', '--send-at', 'tomorrow 9am'], '--send-at: "tomorrow 9am" is not an ISO 8601'],
    [
      ['--to', 'alice', '--title', 'Hi', '--idempotency-key', 'has space'],
      '--idempotency-key: must be printable ASCII',
    ],
  ])('send %j is refused before anything is sent', async (args, message) => {
    // --url points nowhere: a refusal must come before any request.
    const r = await run(['send', ...args, '--url', 'http://127.0.0.1:9', '--key', 'k'.repeat(20)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('prints the bound address and the generated key on the first start only; send takes --data, --send-at, --idempotency-key', async () => {
    const dataDir = await tempDir();
    const env = { HOST: '127.0.0.1', PORT: '0', HERALD_DATA_DIR: dataDir };
    const first = await started(env);
    // PORT=0: the banner names the port actually bound, and it answers there.
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    const kept = JSON.parse(await readFile(join(dataDir, 'secrets.json'), 'utf8')) as { apiKey: string };
    expect(first.stdout()).toContain(`API key: ${kept.apiKey}`);

    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    const args = ['send', '--url', first.url, '--to', 'alice', '--data', '{"postId": 42}', '--send-at', sendAt];
    const sent = await run([...args, '--idempotency-key', 'cli-test-1'], { HERALD_DATA_DIR: dataDir });
    expect(sent.code, sent.stderr).toBe(0);
    const [status, json] = [
      sent.stdout.slice(0, 3),
      JSON.parse(sent.stdout.slice(4)) as { id: string; status: string },
    ];
    expect(status).toBe('202');
    expect(json.status).toBe('scheduled');
    const again = await run([...args, '--idempotency-key', 'cli-test-1'], { HERALD_DATA_DIR: dataDir });
    expect(JSON.parse(again.stdout.slice(4)).id).toBe(json.id);
    const view = await fetch(`${first.url}/v1/notifications/${json.id}`, {
      headers: { authorization: `Bearer ${kept.apiKey}` },
    }).then((r) => r.json() as Promise<{ status: string }>);
    expect(view.status).toBe('scheduled');
    expect(await stop(first)).toBe(0);

    const second = await started(env);
    expect(second.stdout()).not.toContain(kept.apiKey);
    expect(second.stdout()).toContain(`API key: kept in ${join(dataDir, 'secrets.json')}`);
    expect(await stop(second)).toBe(0);
  });

  it('says that PORT is in use, naming it', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await run(['start'], { HOST: '127.0.0.1', PORT: String(port), HERALD_DATA_DIR: await tempDir() });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`PORT ${port} is in use (EADDRINUSE)`);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    } finally {
      blocker.close();
    }
  });

  it('says that DATABASE_URL is unreachable, without its password', async () => {
    const r = await run(['start'], {
      HOST: '127.0.0.1',
      PORT: '0',
      HERALD_DATA_DIR: await tempDir(),
      DATABASE_URL: 'postgres://herald:Pw-0f-the-DB-77@127.0.0.1:9/herald?sslpassword=Ssl-Pw-99',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('DATABASE_URL postgres://herald:***@127.0.0.1:9/herald?sslpassword=*** is unreachable');
    expect(r.stderr).not.toContain('Pw-0f-the-DB-77');
    expect(r.stderr).not.toContain('Ssl-Pw-99');
  });

  it('a configuration error names the setting without its value', async () => {
    const r = await run(['start'], { HERALD_JWT_SECRET: 'Sh0rt-jwt', HERALD_DATA_DIR: await tempDir() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('HERALD_JWT_SECRET (value not shown): must be at least 16 characters');
    expect(r.stderr).not.toContain('Sh0rt-jwt');
  });
});
