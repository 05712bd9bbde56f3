import { describe, expect, it } from 'vitest';
import { GroupCommit, OverloadedError } from './group-commit.ts';

/** Lets setImmediate callbacks and the microtasks they start run. */
const turn = () => new Promise<void>((r) => setImmediate(r));

/** A GroupCommit over numbers (weight = the number) whose flushes the test completes or fails by hand. */
function manual(maxBatch: number, maxPending = 1_000) {
  const flushes: { items: number[]; done: () => void; fail: (e: Error) => void }[] = [];
  const gc = new GroupCommit<number, number>(
    (items) =>
      new Promise((resolve, reject) => {
        flushes.push({ items, done: () => resolve(items.map((x) => x * 10)), fail: reject });
      }),
    { maxBatch, maxPending, parallel: 1, weight: (n) => n, maxWeight: 10 },
  );
  return { gc, flushes };
}

describe('GroupCommit groups (submitAll)', () => {
  it('never splits a group between flushes, and answers each item in order', async () => {
    const { gc, flushes } = manual(3);
    void gc.submit(1);
    const group = gc.submitAll([1, 1, 1]);
    void gc.submit(1);
    await turn();
    // The running flush took the lone item; then the group (3 = maxBatch), then the last one.
    for (let i = 0; i < 3; i++) {
      flushes[i]?.done();
      await turn();
    }
    expect(flushes.map((f) => f.items)).toEqual([[1], [1, 1, 1], [1]]);
    await expect(group).resolves.toEqual([10, 10, 10]);
  });

  it('flushes a group larger than maxBatch or maxWeight alone, whole', async () => {
    const { gc, flushes } = manual(2);
    void gc.submit(1);
    const group = gc.submitAll([4, 4, 4, 4]);
    await turn();
    flushes[0]?.done();
    await turn();
    flushes[1]?.done();
    await turn();
    expect(flushes.map((f) => f.items)).toEqual([[1], [4, 4, 4, 4]]);
    await expect(group).resolves.toEqual([40, 40, 40, 40]);
  });

  it('takes single items beside a group within the limits', async () => {
    const { gc, flushes } = manual(10);
    const a = gc.submitAll([2, 2]);
    void gc.submit(3);
    const b = gc.submitAll([2, 2]);
    await turn();
    expect(flushes.map((f) => f.items)).toEqual([[2, 2, 3]]);
    flushes[0]?.done();
    await turn();
    expect(flushes.map((f) => f.items)).toEqual([
      [2, 2, 3],
      [2, 2],
    ]);
    flushes[1]?.done();
    await expect(Promise.all([a, b])).resolves.toEqual([
      [20, 20],
      [20, 20],
    ]);
  });

  it('fails every item of a group when its flush fails', async () => {
    const { gc, flushes } = manual(10);
    const group = gc.submitAll([1, 1, 1]);
    await turn();
    flushes[0]?.fail(new Error('store down'));
    await expect(group).rejects.toThrow('store down');
  });

  it('refuses a group whole when it would take the waiting items beyond maxPending', async () => {
    const { gc, flushes } = manual(10, 4);
    void gc.submit(1); // flushing
    await turn();
    void gc.submit(1); // waiting: 1
    await expect(gc.submitAll([1, 1, 1, 1])).rejects.toBeInstanceOf(OverloadedError);
    expect(gc.pending).toBe(1);
    // Three more fit (1 + 3 = maxPending).
    const fits = gc.submitAll([1, 1, 1]);
    expect(gc.pending).toBe(4);
    flushes[0]?.done();
    await turn();
    flushes[1]?.done();
    await expect(fits).resolves.toEqual([10, 10, 10]);
  });

  it('admits a group larger than maxPending when nothing waits', async () => {
    const { gc, flushes } = manual(10, 2);
    const group = gc.submitAll([1, 1, 1, 1, 1]);
    await turn();
    flushes[0]?.done();
    await expect(group).resolves.toHaveLength(5);
  });
});
