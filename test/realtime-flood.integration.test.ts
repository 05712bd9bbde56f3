/**
 * One user's socket floods `read` frames (docs/realtime.md, "Client → server" and "Limits"): 20,000
 * of them written at once, as fast as TCP takes them. Nobody else notices — another client's API
 * requests keep a p99 under 100 ms and the process's RSS grows by less than 50 MB — the flooding
 * socket is closed with 1008 "too many frames", and the reads accepted before the close are all
 * written, batched (one unread count per batch, not per read), with a consistent unread count.
 *
 * On both stores: the embedded one has a single connection, so there a statement per read would
 * queue everyone else behind the flood.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_FRAMES } from '../src/core/realtime-protocol.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { userToken } from './support/http.ts';
import { clientFrame, rawConnect } from './support/raw-ws.ts';
import { connectReady, notify, type RealtimeClient, seedNotifications, waitForInboxSeq } from './support/ws-client.ts';

const FRAMES = 20_000;
/** The flooder's inbox: more entries than the frame budget lets it read. */
const ENTRIES = 2500;
const MB = 1024 * 1024;

function p99(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] as number;
}

describe.each(['pglite', 'postgres'] as const)('a read flood on %s', (store) => {
  let t: TestHerald;
  let observer: RealtimeClient;

  beforeAll(async () => {
    t = await startTestHerald({ store });
    await seedNotifications(t, 'flooder', ENTRIES);
    await waitForInboxSeq(t, 'flooder', ENTRIES, 60_000);
    await notify(t, 'bystander');
    // Another socket of the same user, to count the unread pushes.
    observer = (await connectReady(t.url, userToken('flooder'))).client;
  });

  afterAll(async () => {
    await observer?.close();
    await t?.stop();
  });

  async function readSeqs(): Promise<number[]> {
    const rows = await (t.herald.adapters.store as SqlStore).sql.query<{ seq: number }>(
      `SELECT seq::int AS seq FROM inbox WHERE user_id = 'flooder' AND read_at IS NOT NULL ORDER BY seq`,
    );
    return rows.map((r) => r.seq);
  }

  it("closes the flooding socket, writes the reads it accepted, and other clients' requests stay fast", async () => {
    const flood = Buffer.concat(
      Array.from({ length: FRAMES }, (_, i) => clientFrame(`{"type":"read","seq":${i + 1}}`)),
    );
    const raw = await rawConnect(t.url, userToken('flooder'));
    await eventually(() => raw.messages.length > 0, 'ready on the flooding socket');
    expect(raw.messages[0]).toMatchObject({ type: 'ready', unreadCount: ENTRIES });

    const request = async () => {
      const started = performance.now();
      const r =
        Math.random() < 0.8
          ? await t.api('GET', '/v1/users/bystander/inbox?limit=20')
          : await t.api('POST', '/v1/notifications', {
              to: ['bystander'],
              category: 'flood.bystander',
              channels: ['in_app'],
              title: 'still here',
            });
      expect([200, 202]).toContain(r.status);
      return performance.now() - started;
    };
    // Warm up (first requests compile code paths), then measure. The last 100 show the machine's
    // latency without a flood, for the report below.
    const quiet: number[] = [];
    for (let i = 0; i < 200; i++) {
      const l = await request();
      if (i >= 100) quiet.push(l);
    }

    const rssBefore = process.memoryUsage().rss;
    let rssMax = rssBefore;
    const sampler = setInterval(() => {
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }, 10);
    const latencies: number[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) latencies.push(await request());
    })();

    const floodStarted = performance.now();
    raw.write(flood);
    const closed = await raw.closed;

    // Every accepted read is written, and the last unread count pushed is the store's: the same for
    // 300 ms (between two batches the count pushed for the first one matches too).
    let seen = -1;
    const settled = await eventually(
      async () => {
        const read = await readSeqs();
        const last = observer.ofType('unread').at(-1);
        const matches = last?.unreadCount === ENTRIES - read.length;
        const stable = matches && read.length === seen;
        seen = matches ? read.length : -1;
        if (!stable) await new Promise((r) => setTimeout(r, 300));
        return stable ? read : null;
      },
      'the accepted reads written and their unread count pushed',
      30_000,
    );
    // Measure for at least 2 s from the start of the flood.
    const left = 2000 - (performance.now() - floodStarted);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
    polling = false;
    await poller;
    clearInterval(sampler);
    rssMax = Math.max(rssMax, process.memoryUsage().rss);

    expect(closed).toEqual({ code: 1008, reason: 'too many frames' });

    // The reads accepted are the first ones sent, all of them, and no more than the budget allows.
    const k = settled.length;
    expect(k).toBeGreaterThan(0);
    expect(k).toBeLessThan(ENTRIES);
    expect(k).toBeLessThanOrEqual(CLIENT_FRAMES.burst + CLIENT_FRAMES.perSecond * 60);
    expect(settled).toEqual(Array.from({ length: k }, (_, i) => i + 1));
    const inbox = await t.api('GET', '/v1/users/flooder/inbox?limit=1');
    expect(inbox.json.unreadCount).toBe(ENTRIES - k);
    // Batched: one unread count per batch, not one per read.
    const pushes = observer.ofType('unread').length;
    expect(pushes).toBeGreaterThan(0);
    expect(pushes).toBeLessThan(Math.max(2, k / 20));
    // The observer socket of the same user was not closed.
    expect(observer.closedWith).toBeNull();

    const p = p99(latencies);
    const grew = (rssMax - rssBefore) / MB;
    console.info(
      `[${store}] ${k} reads accepted, ${pushes} unread pushes, ${latencies.length} requests: ` +
        `p99 ${p.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms (before the flood: p99 ` +
        `${p99(quiet).toFixed(1)} ms); RSS +${grew.toFixed(1)} MB`,
    );
    expect(latencies.length).toBeGreaterThanOrEqual(50);
    expect(p, `p99 of ${latencies.length} requests during the flood`).toBeLessThan(100);
    expect(grew, 'RSS growth (MB) during the flood').toBeLessThan(50);
  });
});
