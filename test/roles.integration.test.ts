/**
 * Role combinations that would silently lose live notifications are refused at start (until live
 * frames travel between processes): a gateway without a worker anywhere; on one PostgreSQL
 * database, a second gateway+worker process, or worker-only processes beside a gateway+worker one.
 * Combinations that lose nothing (api-only and scheduler-only processes; several worker-only
 * processes with no gateway) start. On the embedded store, missing roles are warned about.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { type Herald, type Role, startHerald } from '../src/herald.ts';
import { freshPostgresUrl, openTestPglite } from './support/databases.ts';
import { testEnv } from './support/herald.ts';

const running: Herald[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const h of running.splice(0).reverse()) await h.stop().catch(() => {});
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

function capture() {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function configFor(databaseUrl?: string) {
  const dataDir = await mkdtemp(join(tmpdir(), 'herald-roles-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  return loadConfig({
    ...testEnv(dataDir),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl, HERALD_PG_POOL_SIZE: '4' } : {}),
  });
}

async function start(databaseUrl: string, roles: Role[]): Promise<Herald> {
  const h = await startHerald(await configFor(databaseUrl), { roles, logger: pino({ level: 'silent' }) });
  running.push(h);
  return h;
}

describe('roles that would lose live notifications', () => {
  it('refuses a gateway without the worker role, saying what to run instead', async () => {
    const config = await configFor();
    for (const roles of [['gateway'], ['api', 'gateway'], ['api', 'gateway', 'scheduler']] as Role[][]) {
      await expect(startHerald(config, { roles, logger: pino({ level: 'silent' }) })).rejects.toThrow(
        /--role gateway without worker: .*Run gateway and worker in the same process.*REDIS_URL/,
      );
    }
  });

  it('on one PostgreSQL database: one gateway+worker process; worker-only ones only without it; api-only freely', async () => {
    const db = await freshPostgresUrl();
    cleanups.push(() => db.drop());
    const everything: Role[] = ['api', 'gateway', 'worker', 'scheduler'];
    const workerOnly: Role[] = ['api', 'worker', 'scheduler'];

    const first = await start(db.url, everything);
    // A second gateway+worker: each would push live frames only to its own sockets.
    await expect(start(db.url, everything)).rejects.toThrow(
      /DATABASE_URL postgres:\/\/postgres@127\.0\.0\.1:5432\/herald_t_\w+: another process with the gateway and worker roles runs on this database.*held by herald \S+ pid \d+/,
    );
    // A worker without a gateway: what it delivers in-app never reaches the first one's sockets.
    await expect(start(db.url, workerOnly)).rejects.toThrow(/a process with the gateway and worker roles runs/);
    // Processes that deliver nothing themselves lose nothing.
    const api = await start(db.url, ['api']);
    const scheduler = await start(db.url, ['scheduler']);
    expect((await fetch(`${api.url}/readyz`)).status).toBe(200);
    // Every process serves health, readiness and metrics on PORT, whatever its roles (API.md) — and
    // only those: no producer API where the api role does not run.
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      expect((await fetch(`${scheduler.url}${path}`)).status, path).toBe(200);
    }
    expect((await fetch(`${scheduler.url}/v1/notifications/x`)).status).toBe(404);
    await scheduler.stop();
    await api.stop();

    await first.stop();
    // With no gateway+worker process, worker-only processes may run, several at once…
    const w1 = await start(db.url, workerOnly);
    const w2 = await start(db.url, ['worker']);
    // …and a gateway+worker process is refused while they do.
    await expect(start(db.url, everything)).rejects.toThrow(/a process with the worker role and no gateway runs/);
    await w1.stop();
    await w2.stop();
    // Once they are gone, it starts: the locks go with the processes.
    const back = await start(db.url, ['gateway', 'worker']);
    expect(back.roles).toEqual(['gateway', 'worker']);
  }, 90_000);

  it('warns on the embedded store when roles are left out (they run nowhere)', async () => {
    const { logger, lines } = capture();
    const h = await startHerald(await configFor(), {
      roles: ['api', 'worker', 'scheduler'],
      logger,
      store: await openTestPglite(),
    });
    running.push(h);
    const warning = lines.find((l) => l.level === 40 && l.msg.includes('roles it leaves out run nowhere'));
    expect(warning?.msg).toContain('gateway (no WebSocket clients are served)');
    expect(warning?.msg).not.toContain('worker (');
  });
});
