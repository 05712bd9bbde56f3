import { describe, expect, it } from 'vitest';
import { notificationFrame, RealtimeSession, type RealtimeSocket } from './realtime-session.ts';
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
  async inboxState() {
    return { lastSeq: this.items.length, unreadCount: this.items.length };
  }
  /** Reads a snapshot taken when called: entries committed while the read is held are not in it. */
  async listInboxAfter(_u: string, after: number, limit: number) {
    const snapshot = this.items.filter((i) => i.seq > after).slice(0, limit);
    await this.gate;
    return snapshot;
  }
  async markRead() {
    return 0;
  }
}

class FakeSocket implements RealtimeSocket {
  sent: any[] = [];
  bufferedAmount = 0;
  closedWith: number | null = null;
  send(data: Buffer, _o: { binary: false }, done?: () => void): void {
    this.sent.push(JSON.parse(data.toString()));
    done?.();
  }
  close(code: number): void {
    this.closedWith = code;
  }
  seqs(): number[] {
    return this.sent.filter((m) => m.type === 'notification').map((m) => m.seq);
  }
}

function session(inbox: FakeInbox, socket: FakeSocket, pageSize = 500) {
  return new RealtimeSession('u', socket, {
    inbox,
    ack: () => {},
    unreadChanged: () => {},
    maxBufferedBytes: 1000,
    pageSize,
  });
}

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
});
