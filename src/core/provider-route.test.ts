import { describe, expect, it } from 'vitest';
import type { ChannelProvider, SendResult } from './ports-channels.ts';
import { type ProviderAttempt, ProviderRoute, RoutedProvider } from './provider-route.ts';
import type { DeliveryJob } from './types.ts';

const job = { deliveryId: 'd1', channel: 'email', userId: 'u1' } as unknown as DeliveryJob;

/** A provider whose answers are scripted, counting its sends. */
function scripted(name: string, answers: (n: number) => SendResult | Promise<SendResult>) {
  let n = 0;
  const p: ChannelProvider & { sends: () => number } = {
    channel: 'email',
    name,
    send: async () => answers(++n),
    sends: () => n,
  };
  return p;
}

const down: SendResult = { ok: false, permanent: false, error: 'connect ECONNREFUSED' };
const up: SendResult = { ok: true, detail: { response: '250 ok' } };

function route(providers: ChannelProvider[], opts: { failures?: number; openMs?: number; budgetMs?: number } = {}) {
  const seen: ProviderAttempt[] = [];
  const routed = providers.map(
    (p) =>
      new RoutedProvider(p, {
        breaker: { failures: opts.failures ?? 2, openMs: opts.openMs ?? 60_000 },
        pace: null,
        timeoutMs: 10,
      }),
  );
  const r = new ProviderRoute('email', routed, {
    maxWaitMs: 100,
    budgetMs: opts.budgetMs ?? 1000,
    observe: (a) => seen.push(a),
  });
  return { r, seen };
}

describe('ProviderRoute', () => {
  it('falls back to the next provider on a transient failure, naming who sent and who was passed over', async () => {
    const primary = scripted('primary', () => down);
    const backup = scripted('backup', () => up);
    const { r, seen } = route([primary, backup]);
    expect(await r.send(job)).toEqual({
      ok: true,
      detail: { response: '250 ok', provider: 'backup', fallbackFrom: ['primary: connect ECONNREFUSED'] },
    });
    expect(seen.map((a) => `${a.provider}:${a.outcome}`)).toEqual(['primary:transient', 'backup:sent']);
  });

  it('opens the failing provider’s breaker and stops sending to it; the others carry on', async () => {
    const primary = scripted('primary', () => down);
    const backup = scripted('backup', () => up);
    const { r } = route([primary, backup], { failures: 2 });
    for (let i = 0; i < 5; i++) expect((await r.send(job)).ok).toBe(true);
    expect(primary.sends()).toBe(2);
    expect(backup.sends()).toBe(5);
    const [p, b] = r.status();
    expect(p).toMatchObject({ name: 'primary', order: 0, failed: 2, circuit: { state: 'open' } });
    expect(b).toMatchObject({ name: 'backup', order: 1, sent: 5, circuit: { state: 'closed' } });
  });

  it('probes an open provider after openMs, and a success closes it', async () => {
    let primaryUp = false;
    const primary = scripted('primary', () => (primaryUp ? up : down));
    const backup = scripted('backup', () => up);
    const { r } = route([primary, backup], { failures: 1, openMs: 30 });
    await r.send(job);
    expect(r.status()[0]?.circuit?.state).toBe('open');
    primaryUp = true;
    await new Promise((res) => setTimeout(res, 40));
    expect(r.status()[0]?.circuit?.state).toBe('half_open');
    expect(await r.send(job)).toMatchObject({ ok: true, detail: { provider: 'primary' } });
    expect(r.status()[0]?.circuit?.state).toBe('closed');
  });

  it('a permanent failure or a skip ends the attempt: another provider would not do better', async () => {
    const refusing = scripted('a', () => ({ ok: false, permanent: true, error: '550 mailbox unknown' }));
    const other = scripted('b', () => up);
    expect(await route([refusing, other]).r.send(job)).toEqual({
      ok: false,
      permanent: true,
      error: 'a: 550 mailbox unknown',
    });
    const skipping = scripted('c', () => ({ ok: false, skipped: 'user u1 has no email' }));
    expect(await route([skipping, other]).r.send(job)).toEqual({ ok: false, skipped: 'user u1 has no email' });
    expect(other.sends()).toBe(0);
    // A permanent answer means the provider is up: it does not count towards its breaker.
    const { r } = route([refusing], { failures: 1 });
    await r.send(job);
    expect(r.status()[0]?.circuit?.state).toBe('closed');
  });

  it('with every provider down, fails transiently with each reason, and not before a breaker would let it through', async () => {
    const a = scripted('a', () => down);
    const b = scripted('b', () => ({ ok: false, permanent: false, error: 'HTTP 503', retryAfterMs: 2000 }));
    const { r } = route([a, b], { failures: 1, openMs: 60_000 });
    expect(await r.send(job)).toEqual({
      ok: false,
      permanent: false,
      error: 'a: connect ECONNREFUSED; b: HTTP 503',
      retryAfterMs: 60_000,
    });
    const again = await r.send(job);
    expect(again).toMatchObject({
      ok: false,
      permanent: false,
      error: 'no provider could take it: a: circuit open; b: circuit open',
    });
    expect(a.sends() + b.sends()).toBe(2);
  });

  it('a provider that throws is a transient failure, not a crash', async () => {
    const thrower = scripted('t', () => {
      throw new Error('boom');
    });
    const backup = scripted('backup', () => up);
    expect(await route([thrower, backup]).r.send(job)).toMatchObject({ ok: true, detail: { provider: 'backup' } });
  });

  it('always tries the first provider, even when its timeout is the whole budget', async () => {
    const only = scripted('only', () => up);
    const { r } = route([only], { budgetMs: 10 });
    expect(await r.send(job)).toMatchObject({ ok: true, detail: { provider: 'only' } });
  });

  it('tries a fallback only while its whole timeout fits in the attempt’s budget', async () => {
    const slow = scripted('slow', async () => {
      await new Promise((res) => setTimeout(res, 30));
      return down;
    });
    const backup = scripted('backup', () => up);
    const { r } = route([slow, backup], { budgetMs: 35 });
    expect(await r.send(job)).toMatchObject({
      ok: false,
      permanent: false,
      error: expect.stringContaining('backup: no time left'),
    });
    expect(backup.sends()).toBe(0);
  });
});
