import { describe, expect, it } from 'vitest';
import { GroupCommit, type GroupCommitOptions } from './group-commit.ts';

/** Lets setImmediate callbacks and the microtasks they start run. */
const turn = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A GroupCommit over numbers whose flushes the test completes by hand. */
function manual(options: Partial<GroupCommitOptions<number>>) {
  const flushes: { items: number[]; done: () => void }[] = [];
  const gc = new GroupCommit<number, number>(
    (items) =>
      new Promise((resolve) => {
        flushes.push({ items, done: () => resolve(items) });
      }),
    { maxBatch: 100, maxPending: 1_000, parallel: 2, ...options },
  );
  const complete = async (i: number) => {
    flushes[i]?.done();
    await turn();
  };
  return { gc, flushes, complete };
}

describe('GroupCommit batching under load', () => {
  it('starts a flush beside a running one only once overlapMinBatch items wait', async () => {
    const { gc, flushes, complete } = manual({ overlapMinBatch: 3, overlapMaxWaitMs: 10_000 });
    void gc.submit(1);
    await turn();
    expect(flushes.map((f) => f.items)).toEqual([[1]]);
    void gc.submit(2);
    void gc.submit(3);
    await turn();
    expect(flushes).toHaveLength(1); // two waiting: not enough for a second flush
    void gc.submit(4);
    await turn();
    expect(flushes.map((f) => f.items)).toEqual([[1], [2, 3, 4]]);
    await complete(0);
    await complete(1);
  });

  it('takes the waiting items when the running flush ends, however few', async () => {
    const { gc, flushes, complete } = manual({ overlapMinBatch: 10, overlapMaxWaitMs: 10_000 });
    const first = gc.submit(1);
    await turn();
    const second = gc.submit(2);
    await turn();
    expect(flushes).toHaveLength(1);
    await complete(0);
    expect(flushes.map((f) => f.items)).toEqual([[1], [2]]);
    await complete(1);
    await expect(Promise.all([first, second])).resolves.toEqual([1, 2]);
  });

  it('does not let a waiting item wait longer than overlapMaxWaitMs for a running flush', async () => {
    const { gc, flushes, complete } = manual({ overlapMinBatch: 10, overlapMaxWaitMs: 20 });
    void gc.submit(1);
    await turn();
    void gc.submit(2);
    await turn();
    expect(flushes).toHaveLength(1);
    await sleep(60);
    expect(flushes.map((f) => f.items)).toEqual([[1], [2]]);
    await complete(0);
    await complete(1);
  });

  it('keeps a flush within maxWeight, and flushes an item heavier than that alone', async () => {
    const { gc, flushes, complete } = manual({ parallel: 1, weight: (n) => n, maxWeight: 10 });
    for (const n of [4, 4, 4, 25, 1]) void gc.submit(n);
    await turn();
    for (let i = 0; i < 4; i++) await complete(i);
    expect(flushes.map((f) => f.items)).toEqual([[4, 4], [4], [25], [1]]);
  });
});
