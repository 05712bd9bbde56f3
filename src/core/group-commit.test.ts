import { describe, expect, it } from 'vitest';
import { GroupCommit, type GroupCommitOptions, OverloadedError } from './group-commit.ts';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets setImmediate callbacks and the microtasks they start run. */
const turn = () => new Promise<void>((r) => setImmediate(r));

/** Tracks a promise's settlement without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = { state: 'pending' };
  p.then(
    (value) => {
      s.state = 'resolved';
      s.value = value;
    },
    (error: unknown) => {
      s.state = 'rejected';
      s.error = error;
    },
  );
  return s;
}

/** A GroupCommit whose flushes the test completes by hand, one deferred per flush. */
function manual(options: Partial<GroupCommitOptions> = {}) {
  const flushes: { items: number[]; done: Deferred<string[]> }[] = [];
  let running = 0;
  let maxRunning = 0;
  const gc = new GroupCommit<number, string>(
    async (items) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      const done = deferred<string[]>();
      flushes.push({ items, done });
      try {
        return await done.promise;
      } finally {
        running--;
      }
    },
    { maxBatch: 100, maxPending: 1_000, parallel: 1, ...options },
  );
  /** Completes flush `i`, answering each item with `r<item>`. */
  const complete = async (i: number) => {
    const f = flushes[i];
    if (!f) throw new Error(`no flush #${i} (there are ${flushes.length})`);
    f.done.resolve(f.items.map((x) => `r${x}`));
    await turn();
  };
  return { gc, flushes, complete, maxRunning: () => maxRunning };
}

describe('GroupCommit', () => {
  it('flushes items submitted in one tick together, and answers each caller with its own result', async () => {
    const calls: number[][] = [];
    const gc = new GroupCommit<number, string>(
      async (items) => {
        calls.push(items);
        return items.map((i) => `r${i}`);
      },
      { maxBatch: 100, maxPending: 100, parallel: 1 },
    );
    const answers = await Promise.all([1, 2, 3, 4, 5].map((i) => gc.submit(i)));
    expect(calls).toEqual([[1, 2, 3, 4, 5]]);
    expect(answers).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
  });

  it('resolves a caller only after the flush that carried its item has finished', async () => {
    const { gc, flushes, complete } = manual();
    const a = track(gc.submit(1));
    await turn();
    expect(flushes).toHaveLength(1);
    await turn();
    expect(a.state).toBe('pending');
    await complete(0);
    expect(a).toMatchObject({ state: 'resolved', value: 'r1' });
  });

  it('groups what arrives during a flush into the next one, within maxBatch', async () => {
    const { gc, flushes, complete } = manual({ maxBatch: 3 });
    const first = track(gc.submit(1));
    await turn();
    const later = [2, 3, 4, 5].map((i) => track(gc.submit(i)));
    await turn();
    expect(flushes.map((f) => f.items)).toEqual([[1]]);
    await complete(0);
    expect(first.state).toBe('resolved');
    expect(flushes.map((f) => f.items)).toEqual([[1], [2, 3, 4]]);
    expect(later.map((s) => s.state)).toEqual(['pending', 'pending', 'pending', 'pending']);
    await complete(1);
    expect(flushes.map((f) => f.items)).toEqual([[1], [2, 3, 4], [5]]);
    expect(later.map((s) => s.state)).toEqual(['resolved', 'resolved', 'resolved', 'pending']);
    await complete(2);
    expect(later.map((s) => s.value)).toEqual(['r2', 'r3', 'r4', 'r5']);
  });

  it('rejects exactly the batch whose flush failed', async () => {
    const { gc, flushes, complete } = manual();
    const a = track(gc.submit(1));
    const b = track(gc.submit(2));
    await turn();
    const c = track(gc.submit(3));
    const d = track(gc.submit(4));
    await turn();
    const boom = new Error('commit failed');
    flushes[0]?.done.reject(boom);
    await turn();
    expect(a).toMatchObject({ state: 'rejected', error: boom });
    expect(b).toMatchObject({ state: 'rejected', error: boom });
    expect(flushes[1]?.items).toEqual([3, 4]);
    expect(c.state).toBe('pending');
    await complete(1);
    expect(c).toMatchObject({ state: 'resolved', value: 'r3' });
    expect(d).toMatchObject({ state: 'resolved', value: 'r4' });
    // And it keeps working afterwards.
    const e = track(gc.submit(5));
    await turn();
    await complete(2);
    expect(e).toMatchObject({ state: 'resolved', value: 'r5' });
  });

  it('rejects a flush that throws synchronously without losing later items', async () => {
    let n = 0;
    const gc = new GroupCommit<number, number>(
      ((items: number[]) => {
        if (n++ === 0) throw new Error('sync');
        return Promise.resolve(items);
      }) as (items: number[]) => Promise<number[]>,
      { maxBatch: 10, maxPending: 10, parallel: 1 },
    );
    await expect(gc.submit(1)).rejects.toThrow('sync');
    await expect(gc.submit(2)).resolves.toBe(2);
  });

  it('refuses with OverloadedError beyond maxPending waiting items, and accepts again once they flush', async () => {
    const { gc, flushes, complete } = manual({ maxPending: 3 });
    const first = track(gc.submit(0));
    await turn(); // item 0 is being flushed: it no longer counts as waiting
    const waiting = [1, 2, 3].map((i) => track(gc.submit(i)));
    expect(gc.pending).toBe(3);
    const refused = gc.submit(4);
    await expect(refused).rejects.toBeInstanceOf(OverloadedError);
    await expect(refused).rejects.toMatchObject({ pending: 3 });
    expect(gc.pending).toBe(3);
    await complete(0);
    expect(first.state).toBe('resolved');
    expect(flushes[1]?.items).toEqual([1, 2, 3]);
    const again = track(gc.submit(5));
    await complete(1);
    expect(waiting.map((s) => s.state)).toEqual(['resolved', 'resolved', 'resolved']);
    await turn();
    await complete(2);
    expect(again).toMatchObject({ state: 'resolved', value: 'r5' });
  });

  it('runs at most `parallel` flushes at once', async () => {
    const { gc, flushes, complete, maxRunning } = manual({ maxBatch: 1, parallel: 2 });
    const all = [1, 2, 3, 4, 5].map((i) => track(gc.submit(i)));
    await turn();
    expect(flushes).toHaveLength(2);
    await turn();
    expect(flushes).toHaveLength(2);
    for (let i = 0; i < 5; i++) await complete(i);
    expect(maxRunning()).toBe(2);
    expect(all.map((s) => s.value)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
  });

  it('runs flushes one at a time when parallel is 1', async () => {
    const { gc, flushes, complete, maxRunning } = manual({ maxBatch: 1, parallel: 1 });
    const all = [1, 2, 3].map((i) => track(gc.submit(i)));
    await turn();
    await turn();
    expect(flushes).toHaveLength(1);
    for (let i = 0; i < 3; i++) await complete(i);
    expect(maxRunning()).toBe(1);
    expect(all.every((s) => s.state === 'resolved')).toBe(true);
  });

  it('drain resolves at once when idle, else only after every queued and running flush', async () => {
    const { gc, complete } = manual({ maxBatch: 2 });
    await gc.drain();
    const items = [1, 2, 3].map((i) => track(gc.submit(i)));
    const drained = track(gc.drain());
    await turn();
    expect(drained.state).toBe('pending');
    await complete(0);
    expect(drained.state).toBe('pending');
    await complete(1);
    expect(items.every((s) => s.state === 'resolved')).toBe(true);
    expect(drained.state).toBe('resolved');
  });

  it('drain also waits for a batch whose flush fails', async () => {
    const { gc, flushes } = manual();
    const a = track(gc.submit(1));
    const drained = track(gc.drain());
    await turn();
    flushes[0]?.done.reject(new Error('no'));
    await turn();
    expect(a.state).toBe('rejected');
    expect(drained.state).toBe('resolved');
  });
  it('with lingerMs, holds a lone item until it is that old, then flushes everything that came meanwhile', async () => {
    const { gc, flushes, complete } = manual({ lingerMs: 40 });
    const t0 = performance.now();
    const a = track(gc.submit(1));
    await turn();
    expect(flushes).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 10));
    gc.submit(2);
    await turn();
    expect(flushes).toHaveLength(0);
    while (flushes.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(39);
    expect(flushes[0]?.items).toEqual([1, 2]);
    await complete(0);
    expect(a.state).toBe('resolved');
  });

  it('with lingerMs, flushes a full batch at once, and drain flushes without lingering', async () => {
    const { gc, flushes, complete } = manual({ lingerMs: 60_000, maxBatch: 3 });
    for (const i of [1, 2, 3, 4]) gc.submit(i);
    await turn();
    expect(flushes.map((f) => f.items)).toEqual([[1, 2, 3]]);
    await complete(0);
    expect(flushes).toHaveLength(1);
    const drained = track(gc.drain());
    await turn();
    expect(flushes.map((f) => f.items)).toEqual([[1, 2, 3], [4]]);
    await complete(1);
    expect(drained.state).toBe('resolved');
    gc.submit(5);
    await turn();
    expect(flushes).toHaveLength(2);
    const again = track(gc.drain());
    await turn();
    await complete(2);
    expect(again.state).toBe('resolved');
  });
});
