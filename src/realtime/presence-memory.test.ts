/** What the in-process presence keeps: nothing growing with users who have left (the port's behaviour is in test/presence.contract.test.ts). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryPresence } from './presence-memory.ts';

describe('MemoryPresence memory', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('does not grow with users who connected and left: only the most recent ones are remembered', async () => {
    const p = new MemoryPresence({ maxOffline: 100 });
    for (let i = 0; i < 5000; i++) {
      await p.opened('g1', `user-${i}`);
      await p.opened('g2', `user-${i}`);
      await p.closed('g1', `user-${i}`);
      await p.closed('g2', `user-${i}`);
    }
    expect(p.size).toBe(100);
    // The most recent leaver is remembered as seen; the first one is forgotten.
    expect(await p.get('user-4999')).toMatchObject({ online: false, sockets: 0 });
    expect((await p.get('user-4999')).lastSeen).toBeInstanceOf(Date);
    expect(await p.get('user-0')).toEqual({ online: false, sockets: 0, lastSeen: null });
  });

  it('counts a user who comes back as online again, and only once', async () => {
    const p = new MemoryPresence({ maxOffline: 10 });
    await p.opened('g1', 'a');
    await p.closed('g1', 'a');
    await p.opened('g1', 'a');
    expect(await p.get('a')).toMatchObject({ online: true, sockets: 1 });
    expect(p.size).toBe(1);
  });

  it('forgets the users of a node whose heartbeat lapsed, without anyone asking about them', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const p = new MemoryPresence({ maxOffline: 10, ttlMs: 1000 });
    for (let i = 0; i < 50; i++) await p.opened('dead', `gone-${i}`);
    expect(p.size).toBe(50);
    vi.setSystemTime(1_000_000 + 61_000);
    // Another node's heartbeat runs the sweep.
    await p.refresh('alive', new Map([['alive', 1]]));
    expect(p.size).toBe(11);
    expect(await p.get('alive')).toMatchObject({ online: true, sockets: 1 });
  });
});
