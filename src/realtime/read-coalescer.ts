/**
 * Writes the `read` frames of real-time connections in batches: per user, one `markRead` at a time,
 * carrying every seq that the user's connections have pending (at most `maxBatch`), followed by
 * one `onWritten` (the new unread count, pushed to every socket of the user).
 *
 * Promises:
 * - A user has at most one `markRead` in flight, so a user's clients, however many frames they
 *   send, cost the store one statement at a time; reads that arrive meanwhile wait in their
 *   session's bounded pending set and go in the next batch.
 * - Every seq handed over is written once, also when its connection has closed since; a batch that
 *   fails tells each connection that contributed to it (`readFailed`) and is not retried.
 * - The meaning of one read is unchanged: seq n is marked read as `{"seqs": [n]}` would.
 * - Memory is per user with reads waiting or being written, and is released when the user's
 *   connections have nothing pending.
 *
 * Fairness among one user's connections: a connection that still has reads after giving some to a
 * batch goes to the back of the line.
 */
import type { InboxStore } from '../core/ports.ts';
import type { ReadSource } from '../core/realtime-session.ts';

export interface ReadCoalescerOptions {
  /** Most seqs in one markRead; default 250 (on the embedded store a statement holds the only connection: short ones let other requests in between). */
  maxBatch?: number;
}

interface UserReads {
  /** Connections with reads waiting, in turn order. */
  sources: Set<ReadSource>;
  writing: boolean;
  scheduled: boolean;
}

export class ReadCoalescer {
  private readonly users = new Map<string, UserReads>();
  private readonly maxBatch: number;
  private idle: (() => void)[] = [];

  constructor(
    private readonly inbox: Pick<InboxStore, 'markRead'>,
    private readonly onWritten: (userId: string, unreadCount: number) => void,
    options: ReadCoalescerOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 250;
  }

  /** Users with reads waiting or being written. */
  get size(): number {
    return this.users.size;
  }

  /** `source` has reads of `userId` waiting; they are taken in this user's next batch. */
  pending(userId: string, source: ReadSource): void {
    let u = this.users.get(userId);
    if (!u) {
      u = { sources: new Set(), writing: false, scheduled: false };
      this.users.set(userId, u);
    }
    u.sources.add(source);
    this.schedule(userId, u);
  }

  /** Resolves once nothing is waiting or being written. */
  drain(): Promise<void> {
    if (this.users.size === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private schedule(userId: string, u: UserReads): void {
    if (u.writing || u.scheduled) return;
    u.scheduled = true;
    // Reads parsed in the same turn (one network read holds many frames) join the batch.
    setImmediate(() => {
      u.scheduled = false;
      void this.write(userId, u);
    });
  }

  private async write(userId: string, u: UserReads): Promise<void> {
    const seqs = new Set<number>();
    const from: ReadSource[] = [];
    for (const s of [...u.sources]) {
      if (seqs.size >= this.maxBatch) break;
      const want = this.maxBatch - seqs.size;
      const taken = s.takeReads(want);
      u.sources.delete(s);
      if (taken.length === 0) continue;
      for (const seq of taken) seqs.add(seq);
      from.push(s);
      // It may have more: back of the line.
      if (taken.length === want) u.sources.add(s);
    }
    if (seqs.size > 0) {
      u.writing = true;
      let unreadCount: number | null = null;
      try {
        unreadCount = await this.inbox.markRead(userId, { seqs: [...seqs] });
      } catch {
        for (const s of from) s.readFailed();
      }
      u.writing = false;
      if (unreadCount !== null) this.onWritten(userId, unreadCount);
    }
    if (u.sources.size > 0) return this.schedule(userId, u);
    this.users.delete(userId);
    if (this.users.size === 0) for (const r of this.idle.splice(0)) r();
  }
}
