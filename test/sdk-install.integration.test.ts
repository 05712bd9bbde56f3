/**
 * @herald/client installs the way packages/client/README.md says: `npm pack` builds it (prepare)
 * into a tarball of ESM JavaScript and .d.ts files; a fresh app outside the repository installs
 * that tarball offline, type-checks against it, imports it with plain Node (no tsx, no loader) and
 * receives a live notification from a running Herald with a user token.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

const run = promisify(execFile);
const PACKAGE_DIR = resolve('packages/client');
const TSC = resolve('node_modules/typescript/bin/tsc');
const NPM_ENV = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' };

const APP = `import { HeraldClient } from '@herald/client';

const [url, token] = process.argv.slice(2);
const herald = new HeraldClient({ url, token });
herald.on('notification', (n) => {
  console.log(JSON.stringify({ seq: n.seq, title: n.title }));
  herald.close();
});
herald.on('error', (e) => console.error(String(e)));
await herald.connect();
console.log('READY');
`;

const TYPED_APP = `import { HeraldClient, type HeraldNotification, type InboxPage } from '@herald/client';

const herald = new HeraldClient({ url: 'http://127.0.0.1:8080', token: 'a user token' });
herald.on('notification', (n: HeraldNotification) => console.log(n.seq.toFixed(0), n.title));
const page: Promise<InboxPage> = herald.inbox.list({ limit: 10 });
// @ts-expect-error: the options are typed, so a misspelt one is caught
new HeraldClient({ url: 'http://127.0.0.1:8080', tokn: 'x' });
export { page };
`;

describe('@herald/client as an installed package', () => {
  let t: TestHerald;
  let work: string;
  let app: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    t = await startTestHerald();
    work = await mkdtemp(join(tmpdir(), 'herald-sdk-'));
    app = join(work, 'app');
    await mkdir(app);
  });
  afterAll(async () => {
    child?.kill();
    await t?.stop();
    await rm(work, { recursive: true, force: true });
  });

  let tarball: string;

  it('npm pack builds a tarball with ESM JavaScript and declarations, exported for import and types', async () => {
    await run('npm', ['pack', '--offline', '--pack-destination', work], {
      cwd: PACKAGE_DIR,
      env: NPM_ENV,
      timeout: 120_000,
    });
    const name = (await readdir(work)).find((f) => f.endsWith('.tgz'));
    expect(name).toBe('herald-client-0.1.0.tgz');
    tarball = join(work, name as string);
    const { stdout: listing } = await run('tar', ['-tzf', tarball]);
    const files = listing.split('\n');
    expect(files).toEqual(expect.arrayContaining(['package/dist/index.js', 'package/dist/index.d.ts']));
    expect(files.filter((f) => f.endsWith('.test.ts'))).toEqual([]);
    const { stdout: manifest } = await run('tar', ['-xzOf', tarball, 'package/package.json']);
    const exported = JSON.parse(manifest).exports['.'];
    expect(exported.types).toBe('./dist/index.d.ts');
    expect(exported.import).toBe('./dist/index.js');
  }, 180_000);

  it('installs offline into a fresh app and type-checks there', async () => {
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], {
      cwd: app,
      env: NPM_ENV,
      timeout: 120_000,
    });
    const installed = JSON.parse(await readFile(join(app, 'node_modules/@herald/client/package.json'), 'utf8'));
    expect(installed.name).toBe('@herald/client');

    await writeFile(join(app, 'typed.ts'), TYPED_APP);
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          lib: ['ES2022', 'DOM'],
          types: [],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
        },
        files: ['typed.ts'],
      }),
    );
    const tsc = await run(process.execPath, [TSC, '-p', app], { cwd: app }).then(
      () => ({ ok: true, out: '' }),
      (e: { stdout: string }) => ({ ok: false, out: e.stdout }),
    );
    expect(tsc.out).toBe('');
    expect(tsc.ok).toBe(true);
  }, 180_000);

  it('is imported by plain Node and receives a live notification with a user token', async () => {
    await writeFile(join(app, 'listen.mjs'), APP);
    const user = 'sdk-user';
    const { json } = await t.api('POST', `/v1/users/${user}/tokens`);
    // Node 20 has a global WebSocket only behind this flag; 22 and later have it by default.
    const flags = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket'] : [];
    const proc = spawn(process.execPath, [...flags, 'listen.mjs', t.url, json.token], { cwd: app });
    child = proc;
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    proc.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    const exited = new Promise<number | null>((r) => proc.on('exit', r));
    await eventually(() => out.includes('READY') || proc.exitCode !== null, 'the app to connect', 30_000);
    expect(err).not.toMatch(/Error/);
    expect(out).toContain('READY');
    const sent = await t.api('POST', '/v1/notifications', {
      to: [user],
      category: 'sdk.test',
      title: 'from the tarball',
    });
    expect(sent.status).toBe(202);
    expect(await exited).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines).toEqual(['READY', JSON.stringify({ seq: 1, title: 'from the tarball' })]);
  }, 60_000);
});
