import { describe, expect, it } from 'vitest';
import type { ReadSource } from '../core/realtime-session.ts';
import type { ReadSelection } from '../core/types.ts';
import { ReadCoalescer } from './read-coalescer.ts';

/** A store whose markRead calls are recorded and can be held open. */
class FakeInbox {
  calls: { userId: string; seqs: number[] }[] = [];
  inFlight = new Map<string, number>();
  maxInFlightPerUser = 0;
  gate: Promise<void> = Promise.resolve();
  fail = false;
  async markRead(userId: string, selection: ReadSelection): Promise<number> {
    if (!('seqs' in selection)) throw new Error('only seqs are expected');
    this.calls.push({ userId, seqs: [...selection.seqs] });
    const n = (this.inFlight.get(userId) ?? 0) + 1;
    this.inFlight.set(userId, n);
    this.maxInFlightPerUser = Math.max(this.maxInFlightPerUser, n);
    try {
      await this.gate;
      if (this.fail) throw new Error('store down');
      return 100 - this.calls.length;
    } finally {
      this.inFlight.set(userId, (this.inFlight.get(userId) ?? 1) - 1);
    }
  }
}

class Source implements ReadSource {
  seqs: number[] = [];
  failed = 0;
  takeReads(max: number): number[] {
    return this.seqs.splice(0, max);
  }
  readFailed(): void {
    this.failed++;
  }
}

const tick = () => new Promise((r) => setTimeout(r, 5));

function setup(maxBatch?: number) {
  const inbox = new FakeInbox();
  const written: [string, number][] = [];
  const c = new ReadCoalescer(inbox, (u, n) => written.push([u, n]), maxBatch ? { maxBatch } : {});
  return { inbox, written, c };
}

describe('ReadCoalescer', () => {
  it("writes a user's pending reads from all its connections in one markRead, then one count", async () => {
    const { inbox, written, c } = setup();
    const a = new Source();
    const b = new Source();
    a.seqs = [1, 2, 3];
    b.seqs = [3, 4];
    c.pending('u', a);
    c.pending('u', b);
    c.pending('u', a);
    await c.drain();
    expect(inbox.calls).toHaveLength(1);
    expect(inbox.calls[0]?.seqs.sort()).toEqual([1, 2, 3, 4]);
    expect(written).toEqual([['u', 99]]);
    expect(c.size).toBe(0);
  });

  it('takes 250 seqs a batch by default', async () => {
    const { inbox, c } = setup();
    const a = new Source();
    a.seqs = Array.from({ length: 600 }, (_, i) => i + 1);
    c.pending('u', a);
    await c.drain();
    expect(inbox.calls.map((x) => x.seqs.length)).toEqual([250, 250, 100]);
  });

  it('has at most one markRead in flight per user; reads arriving meanwhile go in the next batch', async () => {
    const { inbox, written, c } = setup(1000);
    let open!: () => void;
    inbox.gate = new Promise((r) => {
      open = r;
    });
    const a = new Source();
    a.seqs = [1];
    c.pending('u', a);
    await tick();
    for (let seq = 2; seq <= 500; seq++) {
      a.seqs.push(seq);
      c.pending('u', a);
    }
    await tick();
    expect(inbox.calls).toHaveLength(1);
    open();
    await c.drain();
    expect(inbox.calls.map((x) => x.seqs.length)).toEqual([1, 499]);
    expect(inbox.maxInFlightPerUser).toBe(1);
    expect(written.map(([u]) => u)).toEqual(['u', 'u']);
  });

  it('writes different users independently', async () => {
    const { inbox, c } = setup();
    let open!: () => void;
    inbox.gate = new Promise((r) => {
      open = r;
    });
    const a = new Source();
    const b = new Source();
    a.seqs = [1];
    b.seqs = [1];
    c.pending('a', a);
    c.pending('b', b);
    await tick();
    expect(inbox.calls.map((x) => x.userId).sort()).toEqual(['a', 'b']);
    open();
    await c.drain();
  });

  it('takes at most maxBatch seqs a batch, taking turns between connections', async () => {
    const { inbox, c } = setup(10);
    const a = new Source();
    const b = new Source();
    a.seqs = Array.from({ length: 25 }, (_, i) => i + 1);
    b.seqs = [101, 102];
    c.pending('u', a);
    c.pending('u', b);
    await c.drain();
    expect(inbox.calls.map((x) => x.seqs.length)).toEqual([10, 10, 7]);
    // b's reads went in the second batch, not after all of a's.
    expect(inbox.calls[1]?.seqs).toContain(101);
    expect(inbox.calls.flatMap((x) => x.seqs).sort((x, y) => x - y)).toHaveLength(27);
  });

  it('tells the connections of a failed batch, and goes on with the next one', async () => {
    const { inbox, written, c } = setup();
    inbox.fail = true;
    const a = new Source();
    a.seqs = [1, 2];
    c.pending('u', a);
    await c.drain();
    expect(a.failed).toBe(1);
    expect(written).toEqual([]);
    inbox.fail = false;
    a.seqs = [3];
    c.pending('u', a);
    await c.drain();
    expect(written).toHaveLength(1);
    expect(c.size).toBe(0);
  });
});
