/** The Presence port's contract, run against every presence adapter (today: in-process). */
import { describe, expect, it } from 'vitest';
import type { Presence } from '../src/core/ports.ts';
import { MemoryPresence } from '../src/realtime/presence-memory.ts';

const ADAPTERS: { name: string; open(): Promise<Presence> }[] = [
  { name: 'memory', open: async () => new MemoryPresence() },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(ADAPTERS)('Presence contract: $name', (adapter) => {
  it('an unknown user is offline and was never seen', async () => {
    const p = await adapter.open();
    expect(await p.get('nobody')).toEqual({ online: false, sockets: 0, lastSeen: null });
  });

  it('counts sockets per user, and each user separately', async () => {
    const p = await adapter.open();
    await p.touch('a', 's1', 10_000);
    await p.touch('a', 's2', 10_000);
    await p.touch('a', 's2', 10_000);
    await p.touch('b', 's3', 10_000);
    expect(await p.get('a')).toMatchObject({ online: true, sockets: 2 });
    expect(await p.get('b')).toMatchObject({ online: true, sockets: 1 });
  });

  it('forgets a removed socket and remembers when the user was last seen', async () => {
    const p = await adapter.open();
    const before = Date.now();
    await p.touch('a', 's1', 10_000);
    await p.remove('a', 's1');
    const r = await p.get('a');
    expect(r).toMatchObject({ online: false, sockets: 0 });
    expect(r.lastSeen?.getTime()).toBeGreaterThanOrEqual(before);
  });

  it('stops counting a socket whose heartbeat lapsed, and counts it again once refreshed', async () => {
    const p = await adapter.open();
    await p.touch('a', 's1', 50);
    await p.touch('a', 's2', 10_000);
    await sleep(80);
    expect(await p.get('a')).toMatchObject({ online: true, sockets: 1 });
    await p.touch('a', 's1', 10_000);
    expect(await p.get('a')).toMatchObject({ sockets: 2 });
  });
});
