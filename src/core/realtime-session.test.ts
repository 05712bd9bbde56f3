import { describe, expect, it, vi } from 'vitest';
import { CLIENT_FRAMES, MAX_EARLY_FRAMES, MAX_PENDING_READS, notificationFrame } from './realtime-protocol.ts';
import { type ReadSource, RealtimeSession, type RealtimeSocket } from './realtime-session.ts';
import type { InboxItem } from './types.ts';

/** An inbox whose reads can be held open, so live frames can arrive mid-sync. */
class FakeInbox {
  items: InboxItem[] = [];
  gate: Promise<void> = Promise.resolve();
  add(n: number): InboxItem[] {
    const added = Array.from({ length: n }, () => {
      const seq = this.items.length + 1;
      const item: InboxItem = {
        id: `n${seq}`,
        seq,
        category: 'c',
        priority: 'normal',
        title: null,
        body: null,
        data: null,
        createdAt: new Date(0),
        readAt: null,
      };
      this.items.push(item);
      return item;
    });
    return added;
  }
  /** Holds inboxState (the read before `ready`) while set. */
  stateGate: Promise<void> = Promise.resolve();
  async inboxState() {
    await this.stateGate;
    return { lastSeq: this.items.length, unreadCount: this.items.length };
  }
  /** Reads a snapshot taken when called: entries committed while the read is held are not in it. */
  async listInboxAfter(_u: string, after: number, limit: number) {
    const snapshot = this.items.filter((i) => i.seq > after).slice(0, limit);
    await this.gate;
    return snapshot;
  }
}

class FakeSocket implements RealtimeSocket {
  sent: any[] = [];
  bufferedAmount = 0;
  closedWith: number | null = null;
  closeReason = '';
  send(data: Buffer, _o: { binary: false }, done?: () => void): void {
    this.sent.push(JSON.parse(data.toString()));
    done?.();
  }
  close(code: number, reason: string): void {
    this.closedWith = code;
    this.closeReason = reason;
  }
  paused = false;
  terminated = false;
  pause(): void {
    this.paused = true;
  }
  terminate(): void {
    this.terminated = true;
  }
  types(): string[] {
    return this.sent.map((m) => m.type);
  }
  seqs(): number[] {
    return this.sent.filter((m) => m.type === 'notification').map((m) => m.seq);
  }
}

/** What the session handed to its deps: acks, and the sources that said they had reads. */
class Calls {
  acks: number[] = [];
  readSources = new Set<ReadSource>();
  clock = 0;
}

function session(inbox: FakeInbox, socket: FakeSocket, pageSize = 500, calls = new Calls()) {
  return new RealtimeSession('u', socket, {
    inbox,
    ack: (_u, seq) => calls.acks.push(seq),
    readsPending: (_u, source) => calls.readSources.add(source),
    maxBufferedBytes: 1000,
    pageSize,
    now: () => calls.clock,
  });
}

const frame = (o: unknown) => JSON.stringify(o);

const live = (item: InboxItem) => ({ seq: item.seq, frame: notificationFrame(item) });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('RealtimeSession', () => {
  it('sends ready first, then the backlog after `after`, then live frames, each seq once', async () => {
    const inbox = new FakeInbox();
    inbox.add(5);
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    await s.start(2);
    for (const item of inbox.add(2)) s.deliver(live(item));
    expect(socket.sent[0]).toMatchObject({ type: 'ready', lastSeq: 5 });
    expect(socket.seqs()).toEqual([3, 4, 5, 6, 7]);
  });

  it('holds live frames that arrive during the replay and sends them after it, without repeats', async () => {
    const inbox = new FakeInbox();
    inbox.add(10);
    let open!: () => void;
    inbox.gate = new Promise((r) => {
      open = r;
    });
    const socket = new FakeSocket();
    const s = session(inbox, socket, 4);
    const started = s.start(0);
    await new Promise((r) => setTimeout(r, 0));
    // Committed while the replay reads: some arrive live, and the store has them too.
    for (const item of inbox.add(5)) s.deliver(live(item));
    open();
    await started;
    expect(socket.seqs()).toEqual(range(1, 15));
  });

  it('fills a gap from the store when a live seq skips ahead', async () => {
    const inbox = new FakeInbox();
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    await s.start(null);
    const [, , third] = inbox.add(3);
    s.deliver(live(third as InboxItem));
    await new Promise((r) => setTimeout(r, 10));
    expect(socket.seqs()).toEqual([1, 2, 3]);
  });

  it('drops live frames beyond its hold limit during a sync and reads them from the store instead', async () => {
    const inbox = new FakeInbox();
    let open!: () => void;
    inbox.gate = new Promise((r) => {
      open = r;
    });
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    const started = s.start(0);
    await new Promise((r) => setTimeout(r, 0));
    for (const item of inbox.add(2500)) s.deliver(live(item));
    open();
    await started;
    expect(socket.seqs()).toEqual(range(1, 2500));
  });

  it('closes a live socket whose send buffer is over the limit with 4408', async () => {
    const inbox = new FakeInbox();
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    await s.start(null);
    socket.bufferedAmount = 5000;
    const [item] = inbox.add(1);
    s.deliver(live(item as InboxItem));
    expect(socket.closedWith).toBe(4408);
    expect(socket.seqs()).toEqual([]);
  });

  it('closes with 4408 a client that stops reading during a replay, once the live frames held for it pass the limit', async () => {
    const inbox = new FakeInbox();
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    await s.start(null);
    // The client stops reading: what is sent now is never handed to the network (no callback).
    const writtenOut: (() => void)[] = [];
    socket.send = function (data, _o, done) {
      this.sent.push(JSON.parse(data.toString()));
      this.bufferedAmount += data.length;
      if (done) writtenOut.push(done);
    };
    const items = inbox.add(40);
    // A gap (seq 2 first) sends the session to the store: the replayed page waits for the network.
    s.deliver(live(items[1] as InboxItem));
    await new Promise((r) => setTimeout(r, 10));
    expect(socket.seqs()).toEqual(range(1, 40));
    expect(writtenOut.length).toBeGreaterThan(0);
    expect(socket.closedWith).toBeNull();
    // Live frames keep coming and are held behind the page; past maxBufferedBytes (1000) it is slow.
    let n = 0;
    for (const item of inbox.add(20)) {
      s.deliver(live(item));
      n++;
      if (socket.closedWith !== null) break;
    }
    expect(socket.closedWith).toBe(4408);
    expect(n).toBeGreaterThan(1);
    expect(n).toBeLessThan(20);
    // Once the page is written out, nothing more is sent on the closed session.
    for (const done of writtenOut) done();
    await new Promise((r) => setTimeout(r, 10));
    expect(socket.seqs()).toEqual(range(1, 40));
  });

  it('does not count held frames against a reading client: its replayed page leaves at once', async () => {
    const inbox = new FakeInbox();
    inbox.add(600);
    let open!: () => void;
    inbox.gate = new Promise((r) => {
      open = r;
    });
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    const started = s.start(0);
    await new Promise((r) => setTimeout(r, 0));
    // Far more than maxBufferedBytes arrives live while the store is read.
    for (const item of inbox.add(100)) s.deliver(live(item));
    open();
    await started;
    expect(socket.closedWith).toBeNull();
    expect(socket.seqs()).toEqual(range(1, 700));
  });

  it('sends ready first: frames sent before it are answered after it, in order', async () => {
    const inbox = new FakeInbox();
    inbox.add(2);
    let open!: () => void;
    inbox.stateGate = new Promise((r) => {
      open = r;
    });
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    const started = s.start(0);
    s.handleFrame(frame({ type: 'ping' }));
    s.handleFrame('not json');
    s.push(Buffer.from(frame({ type: 'unread', unreadCount: 9 })));
    s.push(Buffer.from(frame({ type: 'unread', unreadCount: 7 })));
    await new Promise((r) => setTimeout(r, 5));
    expect(socket.sent).toEqual([]);
    open();
    await started;
    expect(socket.types()).toEqual(['ready', 'unread', 'pong', 'error', 'notification', 'notification']);
    // Only the last count pushed before ready is sent.
    expect(socket.sent[1]).toEqual({ type: 'unread', unreadCount: 7 });
  });

  it('keeps at most MAX_EARLY_FRAMES frames before ready; one more closes with 1008', async () => {
    const inbox = new FakeInbox();
    inbox.stateGate = new Promise(() => {});
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    void s.start(null);
    for (let i = 0; i < MAX_EARLY_FRAMES; i++) s.handleFrame(frame({ type: 'ping' }));
    expect(socket.closedWith).toBeNull();
    s.handleFrame(frame({ type: 'ping' }));
    expect(socket.closedWith).toBe(1008);
    expect(socket.closeReason).toBe('too many frames');
  });

  it('hands reads over as a pending set: deduplicated, taken in parts, and still there after a close', async () => {
    const inbox = new FakeInbox();
    const socket = new FakeSocket();
    const calls = new Calls();
    const s = session(inbox, socket, 500, calls);
    await s.start(null);
    for (const seq of [5, 3, 5, 9, 3]) s.handleFrame(frame({ type: 'read', seq }));
    expect([...calls.readSources]).toEqual([s]);
    expect(s.takeReads(2)).toEqual([5, 3]);
    s.close(1000, 'bye');
    expect(s.takeReads(10)).toEqual([9]);
    expect(s.takeReads(10)).toEqual([]);
    // Frames after the close are ignored.
    s.handleFrame(frame({ type: 'read', seq: 11 }));
    expect(s.takeReads(10)).toEqual([]);
  });

  it('closes with 1008 when a read finds MAX_PENDING_READS reads waiting; those are kept', async () => {
    const inbox = new FakeInbox();
    const socket = new FakeSocket();
    const s = session(inbox, socket);
    await s.start(null);
    for (let seq = 1; seq <= MAX_PENDING_READS; seq++) s.handleFrame(frame({ type: 'read', seq }));
    // A repeat of a waiting seq is no new work.
    s.handleFrame(frame({ type: 'read', seq: 1 }));
    expect(socket.closedWith).toBeNull();
    s.handleFrame(frame({ type: 'read', seq: MAX_PENDING_READS + 1 }));
    expect(socket.closedWith).toBe(1008);
    expect(socket.closeReason).toBe('too many frames');
    const taken = s.takeReads(10 * MAX_PENDING_READS);
    expect(taken).toEqual(range(1, MAX_PENDING_READS));
  });

  it('budgets client frames: a burst, then a steady rate; the frame over the budget closes with 1008', async () => {
    const inbox = new FakeInbox();
    const socket = new FakeSocket();
    const calls = new Calls();
    const s = session(inbox, socket, 500, calls);
    await s.start(null);
    for (let i = 0; i < CLIENT_FRAMES.burst; i++) s.handleFrame(frame({ type: 'ping' }));
    expect(socket.closedWith).toBeNull();
    // One second refills perSecond frames.
    calls.clock += 1000;
    for (let i = 0; i < CLIENT_FRAMES.perSecond; i++) s.handleFrame(frame({ type: 'ping' }));
    expect(socket.closedWith).toBeNull();
    const pongs = socket.types().filter((t) => t === 'pong').length;
    vi.useFakeTimers();
    try {
      s.handleFrame(frame({ type: 'ping' }));
      expect(socket.closedWith).toBe(1008);
      expect(socket.closeReason).toBe('too many frames');
      expect(socket.types().filter((t) => t === 'pong').length).toBe(pongs);
      // The flood is not read any more, and the connection is cut soon after the close frame.
      expect(socket.paused).toBe(true);
      expect(socket.terminated).toBe(false);
      vi.advanceTimersByTime(1000);
      expect(socket.terminated).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('every notification sent earns its ack and read: a client acknowledging a long replay stays within budget', async () => {
    const inbox = new FakeInbox();
    const n = CLIENT_FRAMES.burst * 2;
    inbox.add(n);
    const socket = new FakeSocket();
    const calls = new Calls();
    const s = session(inbox, socket, 500, calls);
    await s.start(0);
    expect(socket.seqs()).toHaveLength(n);
    for (let seq = 1; seq <= n; seq++) s.handleFrame(frame({ type: 'ack', seq }));
    for (let seq = 1; seq <= MAX_PENDING_READS; seq++) s.handleFrame(frame({ type: 'read', seq }));
    expect(socket.closedWith).toBeNull();
    expect(calls.acks).toEqual(range(1, n));
    // The earned frames are spent (n acks + reads out of 2n), the bucket is still full.
    const rest = 2 * n - n - MAX_PENDING_READS + CLIENT_FRAMES.burst;
    for (let i = 0; i < rest; i++) s.handleFrame(frame({ type: 'ping' }));
    expect(socket.closedWith).toBeNull();
    s.handleFrame(frame({ type: 'ping' }));
    expect(socket.closedWith).toBe(1008);
  });
});
