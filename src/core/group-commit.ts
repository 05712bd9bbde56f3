/**
 * Group commit: callers submit items one at a time; items that arrive while a flush is running
 * (or within the same event-loop turn) are flushed together, in one transaction, by `flush`.
 * Each caller's promise settles only when the flush that carried its item has finished, so
 * "resolved" still means "committed".
 *
 * Bounded: at most `maxPending` items wait; beyond that `submit` rejects with `OverloadedError`
 * instead of growing a queue without limit. At most `parallel` flushes run at once, each with at
 * most `maxBatch` items and `maxWeight` weight.
 *
 * Batches grow under load: while a flush runs, a second one starts only once `overlapMinBatch`
 * items wait or the oldest has waited `overlapMaxWaitMs`. Every flush costs a round trip and a
 * commit whatever its size, so a few large flushes carry more than many small ones; when nothing
 * runs, a lone item is flushed at once — unless `lingerMs` is set, for work whose callers do not
 * wait on it (acknowledgements): then a flush waits until its oldest item is that old (or a full
 * batch waits, or `drain` is called), so a steady trickle costs a few statements a second.
 *
 * Groups: `submitAll` queues several items as one unit that no flush splits — they commit in the
 * same flush (one transaction) or fail together. A group is admitted whole or refused whole, and
 * one larger than `maxBatch` or `maxWeight` is flushed alone.
 */

export class OverloadedError extends Error {
  constructor(readonly pending: number) {
    super(`too many pending items (${pending})`);
    this.name = 'OverloadedError';
  }
}

export interface GroupCommitOptions<I = unknown> {
  /** Largest batch handed to one flush. */
  maxBatch: number;
  /** Items allowed to wait (not counting those being flushed). */
  maxPending: number;
  /** Flushes allowed to run at once (1 for a single-connection store). */
  parallel: number;
  /** Items waiting before a flush starts beside a running one; default 1 (as soon as `parallel` allows). */
  overlapMinBatch?: number;
  /** Longest wait for `overlapMinBatch` items before a flush starts beside a running one anyway; default 2 ms. */
  overlapMaxWaitMs?: number;
  /** Weight of an item (e.g. the rows it writes); default 1. */
  weight?: (item: I) => number;
  /** Most weight in one flush; an item heavier than this is flushed alone. Default: no limit. */
  maxWeight?: number;
  /** How long the oldest item waits for company before a flush starts; default 0. */
  lingerMs?: number;
}

interface Waiting<I, O> {
  item: I;
  /** When it was submitted (performance.now()). */
  at: number;
  /** Items of the unit this one begins (1: alone); the other items of a group carry 0. */
  unit: number;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit<I, O> {
  private queue: Waiting<I, O>[] = [];
  private running = 0;
  private scheduled = false;
  private idle: (() => void)[] = [];
  /** Wakes pump() when the oldest waiting item has waited long enough (linger, overlap). */
  private holdTimer: NodeJS.Timeout | null = null;
  private holdUntil = 0;
  /** Set by drain(): flush what waits without lingering. */
  private draining = false;

  constructor(
    private readonly flush: (items: I[]) => Promise<O[]>,
    private readonly options: GroupCommitOptions<I>,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  submit(item: I): Promise<O> {
    if (this.queue.length >= this.options.maxPending) return Promise.reject(new OverloadedError(this.queue.length));
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, at: performance.now(), unit: 1, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Submits `items` as one group: they are flushed together, in order, by one flush. Refused whole
   * (OverloadedError, nothing queued) when they would take the waiting items beyond `maxPending` —
   * unless nothing waits, so that a group larger than `maxPending` can still go.
   */
  submitAll(items: readonly I[]): Promise<O[]> {
    const waiting = this.queue.length;
    if (waiting > 0 && waiting + items.length > this.options.maxPending) {
      return Promise.reject(new OverloadedError(waiting));
    }
    const at = performance.now();
    const out = items.map(
      (item, i) =>
        new Promise<O>((resolve, reject) => {
          this.queue.push({ item, at, unit: i === 0 ? items.length : 0, resolve, reject });
        }),
    );
    this.schedule();
    return Promise.all(out);
  }

  /** Resolves once nothing is queued or being flushed. */
  drain(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    this.draining = true;
    this.pump();
    return new Promise((r) => this.idle.push(r));
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.options.parallel) return;
    this.scheduled = true;
    // setImmediate lets every request parsed in this turn join the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const { parallel, overlapMinBatch = 1, overlapMaxWaitMs = 2, lingerMs = 0 } = this.options;
    while (this.running < parallel && this.queue.length > 0) {
      const waited = performance.now() - (this.queue[0] as Waiting<I, O>).at;
      let hold = 0;
      // Lingering: nobody waits on these items, so let the batch gather.
      if (lingerMs > 0 && !this.draining && this.queue.length < this.options.maxBatch) hold = lingerMs - waited;
      // Let the batch grow while a flush runs, but not for longer than overlapMaxWaitMs.
      if (hold <= 0 && this.running > 0 && this.queue.length < overlapMinBatch) hold = overlapMaxWaitMs - waited;
      if (hold > 0) {
        this.pumpAfter(hold);
        return;
      }
      const batch = this.queue.splice(0, this.batchLength());
      this.running++;
      this.run(batch).finally(() => {
        this.running--;
        if (this.queue.length > 0) this.pump();
        else if (this.running === 0) {
          this.draining = false;
          for (const r of this.idle.splice(0)) r();
        }
      });
    }
  }

  /** Runs pump() in `ms`, unless a timer already set will run it sooner. */
  private pumpAfter(ms: number): void {
    const at = performance.now() + ms;
    if (this.holdTimer && this.holdUntil <= at) return;
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdUntil = at;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null;
      this.pump();
    }, ms);
  }

  /**
   * How many of the oldest waiting items the next flush takes: whole units (a group is never
   * split) within maxBatch and maxWeight, and at least the first unit.
   */
  private batchLength(): number {
    const { maxBatch, weight, maxWeight = Number.POSITIVE_INFINITY } = this.options;
    const queue = this.queue;
    let n = 0;
    let total = 0;
    while (n < queue.length && n < maxBatch) {
      const size = (queue[n] as Waiting<I, O>).unit;
      let w = 0;
      if (weight) for (let i = n; i < n + size; i++) w += weight((queue[i] as Waiting<I, O>).item);
      if (n > 0 && (n + size > maxBatch || total + w > maxWeight)) break;
      total += w;
      n += size;
    }
    return n;
  }

  private async run(batch: Waiting<I, O>[]): Promise<void> {
    try {
      const out = await this.flush(batch.map((w) => w.item));
      for (const [i, w] of batch.entries()) w.resolve(out[i] as O);
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }
}
