/**
 * Group commit: callers submit items one at a time; items that arrive while a flush is running
 * (or within the same event-loop turn) are flushed together, in one transaction, by `flush`.
 * Each caller's promise settles only when the flush that carried its item has finished, so
 * "resolved" still means "committed".
 *
 * Bounded: at most `maxPending` items wait; beyond that `submit` rejects with `OverloadedError`
 * instead of growing a queue without limit. At most `parallel` flushes run at once.
 */

export class OverloadedError extends Error {
  constructor(readonly pending: number) {
    super(`too many pending items (${pending})`);
    this.name = 'OverloadedError';
  }
}

export interface GroupCommitOptions {
  /** Largest batch handed to one flush. */
  maxBatch: number;
  /** Items allowed to wait (not counting those being flushed). */
  maxPending: number;
  /** Flushes allowed to run at once (1 for a single-connection store). */
  parallel: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit<I, O> {
  private queue: Waiting<I, O>[] = [];
  private running = 0;
  private scheduled = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly flush: (items: I[]) => Promise<O[]>,
    private readonly options: GroupCommitOptions,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  submit(item: I): Promise<O> {
    if (this.queue.length >= this.options.maxPending) return Promise.reject(new OverloadedError(this.queue.length));
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once nothing is queued or being flushed. */
  drain(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
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
    while (this.running < this.options.parallel && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.running++;
      this.run(batch).finally(() => {
        this.running--;
        if (this.queue.length > 0) this.pump();
        else if (this.running === 0) for (const r of this.idle.splice(0)) r();
      });
    }
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
