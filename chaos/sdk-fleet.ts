/**
 * SDK clients (packages/client's HeraldClient over `ws`), one per user, as apps would hold them:
 * they reconnect with backoff and resume with `after` = the last seq seen. The fleet counts, per
 * user, every seq the SDK handed to the app (what a user sees: must be 1..n exactly once) and,
 * underneath, every notification frame the server sent (the SDK drops repeats; those are counted
 * as `resent`, a fact, not a failure).
 */
import WebSocket from 'ws';
import { HeraldClient } from '../packages/client/src/index.ts';
import { forEachLimit } from './api.ts';

export interface SdkFleet {
  /** Per user: seq → how many times the SDK emitted it. */
  seen: Map<string, Map<number, number>>;
  /** Notification frames the server sent that the SDK dropped as already seen. */
  resent(): number;
  /** Clients whose connection is open now. */
  openCount(): number;
  /** Sockets that reached `ready` after the first one, over all clients. */
  reconnects(): number;
  /**
   * Against `expected` (per user, the highest seq it must have: every seq 1..n once): seqs never
   * emitted (lost), emitted more than once (duplicated), and how many were expected and emitted.
   */
  tally(expected: ReadonlyMap<string, number>): { sent: number; delivered: number; lost: number; duplicated: number };
  close(): void;
}

export async function startSdkFleet(options: {
  url: string;
  users: readonly string[];
  token: (userId: string) => Promise<string>;
}): Promise<SdkFleet> {
  const seen = new Map<string, Map<number, number>>();
  const clients: HeraldClient[] = [];
  const open = new Set<HeraldClient>();
  let frames = 0;
  let emitted = 0;
  let readies = 0;
  await forEachLimit(options.users, 25, async (userId) => {
    const seqs = new Map<number, number>();
    seen.set(userId, seqs);
    // Counts frames below the SDK: a `ws` socket with one more listener.
    class CountingSocket extends WebSocket {
      constructor(url: string) {
        super(url);
        this.on('message', (data) => {
          if (String(data).startsWith('{"type":"notification"')) frames++;
        });
      }
    }
    const token = await options.token(userId);
    const client = new HeraldClient({
      url: options.url,
      token,
      getToken: () => options.token(userId),
      WebSocket: CountingSocket,
      after: 0,
      reconnect: { baseMs: 100, maxMs: 1_000 },
      heartbeat: { intervalMs: 5_000, maxMissed: 2 },
      connectTimeoutMs: 5_000,
    });
    client.on('notification', (n) => {
      emitted++;
      seqs.set(n.seq, (seqs.get(n.seq) ?? 0) + 1);
    });
    client.on('connection', (s) => {
      if (s.status === 'open') {
        open.add(client);
        readies++;
      } else open.delete(client);
    });
    // Socket errors while a gateway dies are expected; the counts tell whether they cost anything.
    client.on('error', () => {});
    clients.push(client);
    await client.connect();
  });
  const first = clients.length;
  return {
    seen,
    resent: () => frames - emitted,
    openCount: () => open.size,
    reconnects: () => readies - first,
    tally(expected) {
      let sent = 0;
      let delivered = 0;
      let lost = 0;
      let duplicated = 0;
      for (const [userId, n] of expected) {
        const seqs = seen.get(userId) ?? new Map<number, number>();
        sent += n;
        for (let s = 1; s <= n; s++) {
          const c = seqs.get(s) ?? 0;
          if (c === 0) lost++;
          else delivered++;
          if (c > 1) duplicated += c - 1;
        }
      }
      return { sent, delivered, lost, duplicated };
    },
    close() {
      for (const c of clients) c.close();
    },
  };
}
