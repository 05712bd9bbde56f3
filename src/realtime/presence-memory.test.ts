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
      await p.touch(`user-${i}`, 's1', 60_000);
      await p.touch(`user-${i}`, 's2', 60_000);
      await p.remove(`user-${i}`, 's1');
      await p.remove(`user-${i}`, 's2');
    }
    expect(p.size).toBe(100);
    // The most recent leaver is remembered as seen; the first one is forgotten.
    expect(await p.get('user-4999')).toMatchObject({ online: false, sockets: 0 });
    expect((await p.get('user-4999')).lastSeen).toBeInstanceOf(Date);
    expect(await p.get('user-0')).toEqual({ online: false, sockets: 0, lastSeen: null });
  });

  it('counts a user who comes back as online again, and only once', async () => {
    const p = new MemoryPresence({ maxOffline: 10 });
    await p.touch('a', 's1', 60_000);
    await p.remove('a', 's1');
    await p.touch('a', 's2', 60_000);
    expect(await p.get('a')).toMatchObject({ online: true, sockets: 1 });
    expect(p.size).toBe(1);
  });

  it('forgets sockets whose heartbeat lapsed without a remove, without anyone asking about their user', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const p = new MemoryPresence({ maxOffline: 10 });
    for (let i = 0; i < 50; i++) await p.touch(`gone-${i}`, 's', 1000);
    expect(p.size).toBe(50);
    vi.setSystemTime(1_000_000 + 61_000);
    // Another user's heartbeat runs the sweep.
    await p.touch('alive', 's', 60_000);
    expect(p.size).toBe(11);
    expect(await p.get('alive')).toMatchObject({ online: true, sockets: 1 });
  });
});
