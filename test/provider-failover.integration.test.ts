/**
 * Providers in fallback order, with circuit breakers (HERALD_CONFIG), against real SMTP servers:
 * with the primary relay refusing connections, email goes out through the fallback and the primary's
 * breaker opens; when the primary comes back, a probe closes it. GET /v1/providers and /metrics show
 * both. On both stores.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { startSmtpServer, type TestSmtpServer } from './support/smtp-server.ts';

const USER = 'relay-user';
const PASS = 'relay-Pa55-word';
const OPEN_MS = 1500;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe.each(['pglite', 'postgres'] as const)('provider failover and circuit breakers (%s)', (store) => {
  let t: TestHerald;
  let primaryPort: number;
  let primary: TestSmtpServer | undefined;
  let backup: TestSmtpServer;
  let n = 0;

  beforeAll(async () => {
    primaryPort = await freePort();
    backup = await startSmtpServer({ user: USER, pass: PASS });
    const dir = await mkdtemp(join(tmpdir(), 'herald-providers-'));
    const file = join(dir, 'providers.json');
    await writeFile(
      file,
      JSON.stringify({
        providers: {
          smtp: { circuitBreaker: { failures: 2, openMs: OPEN_MS } },
          'smtp-backup': { type: 'smtp', url: `smtp://${USER}:${PASS}@127.0.0.1:${backup.port}` },
        },
        channels: { email: ['smtp', 'smtp-backup'] },
      }),
    );
    t = await startTestHerald({
      store,
      env: {
        HERALD_SMTP_URL: `smtp://${USER}:${PASS}@127.0.0.1:${primaryPort}`,
        HERALD_EMAIL_FROM: 'Herald <notify@example.test>',
        HERALD_SMTP_TIMEOUT_MS: '2000',
        HERALD_CONFIG: file,
        HERALD_RETRY_BASE_MS: '100',
      },
    });
  });

  afterAll(async () => {
    await t?.stop();
    await primary?.close();
    await backup?.close();
  });

  async function email(): Promise<{ id: string; to: string }> {
    const user = `fo-${store}-${++n}`;
    const to = `${user}@example.test`;
    expect((await t.api('PUT', `/v1/users/${user}`, { email: to })).status).toBe(200);
    const r = await t.api('POST', '/v1/notifications', {
      to: [user],
      category: 'ops.alert',
      channels: ['email'],
      title: `hello ${n}`,
    });
    expect(r.status).toBe(202);
    return { id: r.json.id, to };
  }

  async function sentBy(id: string): Promise<Record<string, unknown>> {
    return eventually(async () => {
      const v = (await t.api('GET', `/v1/notifications/${id}`)).json;
      return v.timeline.find((e: { event: string }) => e.event === 'sent')?.detail ?? null;
    }, `notification ${id} sent`);
  }

  async function providers(): Promise<Record<string, any>> {
    const r = await t.api('GET', '/v1/providers');
    expect(r.status).toBe(200);
    return Object.fromEntries(r.json.items.map((p: { name: string }) => [p.name, p]));
  }

  async function metric(name: string, labels: string): Promise<number | undefined> {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  }

  it('sends through the fallback while the primary refuses connections, and opens the primary’s breaker', async () => {
    const first = await email();
    const detail = await sentBy(first.id);
    expect(detail).toMatchObject({ provider: 'smtp-backup' });
    expect(String((detail.fallbackFrom as string[])[0])).toMatch(/^smtp: .*ECONNREFUSED/);
    for (let i = 0; i < 3; i++) expect(await sentBy((await email()).id)).toMatchObject({ provider: 'smtp-backup' });
    expect(backup.received.map((m) => m.rcpt)).toEqual(expect.arrayContaining([first.to]));
    expect(backup.received).toHaveLength(4);

    const p = await providers();
    expect(p.smtp).toMatchObject({ channel: 'email', order: 0, sent: 0, circuit: { state: 'open', opened: 1 } });
    expect(p.smtp.failed).toBeGreaterThanOrEqual(2);
    expect(p.smtp.lastError).toMatch(/ECONNREFUSED/);
    expect(p['smtp-backup']).toMatchObject({ channel: 'email', order: 1, sent: 4, circuit: { state: 'closed' } });
    expect(await metric('herald_provider_circuit_state', 'provider="smtp"')).toBe(2);
    expect(await metric('herald_provider_circuit_state', 'provider="smtp-backup"')).toBe(0);
    // While open, the primary was passed over without a connection attempt.
    expect(
      await metric('herald_provider_attempts_total', 'provider="smtp",channel="email",outcome="open"'),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await metric('herald_provider_attempts_total', 'provider="smtp-backup",channel="email",outcome="sent"'),
    ).toBe(4);
  });

  it('when the primary comes back, a probe after openMs closes its breaker and it sends again', async () => {
    primary = await startSmtpServer({ user: USER, pass: PASS, port: primaryPort });
    await new Promise((r) => setTimeout(r, OPEN_MS + 100));
    expect((await providers()).smtp.circuit.state).toBe('half_open');
    const probe = await email();
    expect(await sentBy(probe.id)).toMatchObject({ provider: 'smtp' });
    expect(primary.received.map((m) => m.rcpt)).toEqual([probe.to]);
    const p = await providers();
    expect(p.smtp).toMatchObject({ sent: 1, circuit: { state: 'closed', consecutiveFailures: 0 } });
    expect(await metric('herald_provider_circuit_state', 'provider="smtp"')).toBe(0);
    const next = await email();
    expect(await sentBy(next.id)).toMatchObject({ provider: 'smtp' });
    expect(backup.received).toHaveLength(4);
  });
});
