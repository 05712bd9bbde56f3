import { describe, expect, it } from 'vitest';
import { type Admission, DestinationLimit, type Permit } from './destination-limit.ts';

function setup(max = 2) {
  let now = 1_000_000;
  const limit = new DestinationLimit<string>({ max, now: () => now });
  return {
    limit,
    tick: (ms: number) => {
      now += ms;
    },
    now: () => now,
    /** Admits with a deadline far ahead. */
    admit: (key: string, item: string): Admission => limit.admit(key, item, now + 60_000),
  };
}

function permitOf(a: Admission): Permit {
  if (a.kind !== 'go') throw new Error(`expected go, got ${a.kind}`);
  return a.permit;
}

describe('DestinationLimit', () => {
  it('gives at most `max` permits per destination, and other destinations their own', () => {
    const { limit, admit } = setup(2);
    expect(admit('https://slow.example', 'a').kind).toBe('go');
    expect(admit('https://slow.example', 'b').kind).toBe('go');
    // Nothing is known of this destination yet (no send has finished): nothing parks.
    expect(admit('https://slow.example', 'c').kind).toBe('defer');
    expect(limit.inFlight('https://slow.example')).toBe(2);
    expect(admit('https://fast.example', 'x').kind).toBe('go');
  });

  it('parks a job while a permit is expected back soon, and hands the permit on when released', () => {
    const { limit, admit, tick } = setup(1);
    // A destination known to answer in 5 ms.
    const first = permitOf(admit('d', 'a'));
    tick(5);
    expect(limit.release(first, 5)).toEqual({ granted: [], deferred: [] });
    const p = permitOf(admit('d', 'b'));
    expect(admit('d', 'c')).toEqual({ kind: 'parked' });
    expect(limit.parked).toBe(1);
    tick(5);
    const moves = limit.release(p, 5);
    expect(moves.deferred).toEqual([]);
    expect(moves.granted.map((g) => g.item)).toEqual(['c']);
    expect(limit.parked).toBe(0);
    expect(limit.inFlight('d')).toBe(1);
  });

  it('defers jobs of a slow destination, spread over the time its sends are expected to take', () => {
    const { limit, admit, tick, now } = setup(2);
    // Sends that took 10 s.
    const a = permitOf(admit('slow', 'a'));
    const b = permitOf(admit('slow', 'b'));
    tick(10_000);
    limit.release(a, 10_000);
    limit.release(b, 10_000);
    const c = permitOf(admit('slow', 'c'));
    const d = permitOf(admit('slow', 'd'));
    const untils: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = admit('slow', `e${i}`);
      if (r.kind !== 'defer') throw new Error(`expected defer, got ${r.kind}`);
      untils.push(r.until - now());
    }
    // Two permits, 10 s a send: two come back after 10 s, two after 20 s, two after 30 s.
    expect(untils).toEqual([10_000, 10_000, 20_000, 20_000, 30_000, 30_000]);
    expect(limit.parked).toBe(0);
    // Once their time has passed, deferred jobs no longer count as waiting.
    tick(31_000);
    limit.release(c, 10_000);
    limit.release(d, 10_000);
    permitOf(admit('slow', 'f'));
    permitOf(admit('slow', 'g'));
    const next = admit('slow', 'h');
    expect(next.kind === 'defer' && next.until - now()).toBe(10_000);
  });

  it('caps a deferral at maxDeferMs and never defers for less than minDeferMs', () => {
    let now = 0;
    const limit = new DestinationLimit<string>({ max: 1, now: () => now, minDeferMs: 20, maxDeferMs: 1000 });
    const p = limit.admit('d', 'a', 1e9) as { permit: Permit };
    now += 5000;
    limit.release(p.permit, 5000);
    limit.admit('d', 'b', 1e9);
    const r = limit.admit('d', 'c', 1e9);
    expect(r).toEqual({ kind: 'defer', until: now + 1000 });
  });

  it('defers a job that would wait past its own deadline', () => {
    const { limit, tick, now } = setup(1);
    const p = limit.admit('d', 'a', now() + 1000) as { permit: Permit };
    tick(2);
    limit.release(p.permit, 2);
    limit.admit('d', 'b', now() + 1000);
    // A 2 ms wait, but this job may not start later than now.
    expect(limit.admit('d', 'c', now()).kind).toBe('defer');
  });

  it('a parked job whose deadline passed before its turn is deferred, not granted', () => {
    const { limit, tick, now } = setup(1);
    const a = limit.admit('d', 'a', now() + 1000) as { permit: Permit };
    tick(1);
    limit.release(a.permit, 1);
    const b = limit.admit('d', 'b', now() + 1000) as { permit: Permit };
    expect(limit.admit('d', 'c', now() + 50).kind).toBe('parked');
    tick(60);
    const moves = limit.release(b.permit, 60);
    expect(moves.granted).toEqual([]);
    expect(moves.deferred.map((d) => d.item)).toEqual(['c']);
    expect(limit.inFlight('d')).toBe(0);
  });

  it('sweep gives back the parked jobs of a destination that has turned slow', () => {
    const { limit, admit, tick } = setup(1);
    const a = permitOf(admit('d', 'a'));
    tick(1);
    limit.release(a, 1);
    permitOf(admit('d', 'b'));
    expect(admit('d', 'c').kind).toBe('parked');
    expect(admit('other', 'x').kind).toBe('go');
    tick(50);
    expect(limit.sweep().deferred).toEqual([]);
    // The send in flight has now taken 500 ms: nothing parked behind it can start within 100 ms.
    tick(450);
    const moves = limit.sweep();
    expect(moves.deferred.map((d) => d.item)).toEqual(['c']);
    expect(limit.parked).toBe(0);
  });

  it('drain takes every parked job out', () => {
    const { limit, admit, tick } = setup(1);
    const a = permitOf(admit('d', 'a'));
    tick(1);
    limit.release(a, 1);
    permitOf(admit('d', 'b'));
    expect(admit('d', 'c').kind).toBe('parked');
    expect(admit('d', 'e').kind).toBe('parked');
    expect(limit.drain()).toEqual(['c', 'e']);
    expect(limit.parked).toBe(0);
  });
});
