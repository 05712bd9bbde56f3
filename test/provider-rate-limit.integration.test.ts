/**
 * A provider's rate limit (HERALD_CONFIG `rateLimit`): a webhook provider limited to 200 messages/s
 * with a burst of 20 is sent 4,400 deliveries, a run of more than 20 seconds. In no one-second
 * window does Herald start more than 220 sends, and every delivery arrives at the receiver, once.
 *
 * The windows are counted on the times Herald starts each send (the `provider:attempt` events):
 * that is what Herald controls. The receiver (its own process) sees the same sends shifted by the
 * network and by scheduling — on a loaded 2-core machine a process can wait tens of milliseconds for
 * a core and then read a bunch of requests at once — so its windows are reported, not asserted.
 * (The pace is the route's, in the worker, whatever the store: this runs on PostgreSQL.)
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

/** The receiver runs in its own process (test/support/timing-receiver.mjs), so its clock is honest. */
async function startTimingReceiver() {
  const child: ChildProcess = fork(new URL('./support/timing-receiver.mjs', import.meta.url));
  const { port } = await new Promise<{ port: number }>((r) => child.once('message', (m) => r(m as { port: number })));
  const dump = () =>
    new Promise<{ at: number; id: string }[]>((r) => {
      child.once('message', (m) => r((m as { seen: { at: number; id: string }[] }).seen));
      child.send('dump');
    });
  return { url: `http://127.0.0.1:${port}`, dump, close: () => child.kill() };
}

const PER_SECOND = 200;
const BURST = 20;
const USERS = 100;
const NOTIFICATIONS = 44;
const TOTAL = USERS * NOTIFICATIONS;

/** The most of `sorted` (ms) within any one-second window. */
function busiestSecond(sorted: number[]): number {
  let busiest = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[j] as number) <= (sorted[i] as number) - 1000) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  return busiest;
}

describe('a provider limited to 200 messages/s', () => {
  let t: TestHerald;
  let receiver: Awaited<ReturnType<typeof startTimingReceiver>>;

  beforeAll(async () => {
    receiver = await startTimingReceiver();
    const dir = await mkdtemp(join(tmpdir(), 'herald-pace-'));
    const file = join(dir, 'providers.json');
    await writeFile(
      file,
      JSON.stringify({ providers: { webhook: { rateLimit: { perSecond: PER_SECOND, burst: BURST } } } }),
    );
    // All 100 users' URLs are the one receiver: let every send slot go to it (the per-destination
    // limit is webhook-slow-destination's subject; here the provider's pace is to be the only bound).
    t = await startTestHerald({
      store: 'postgres',
      env: { HERALD_CONFIG: file, HERALD_WEBHOOK_MAX_PER_DESTINATION: '32' },
    });
  });

  afterAll(async () => {
    await t?.stop();
    receiver?.close();
  });

  it('is never sent more than its rate plus its burst in any one-second window, and nothing is dropped', async () => {
    const users = Array.from({ length: USERS }, (_, i) => `paced-${i}`);
    for (const u of users) {
      expect((await t.api('PUT', `/v1/users/${u}`, { webhookUrl: `${receiver.url}/hook/${u}` })).status).toBe(200);
    }
    const started: number[] = [];
    t.herald.events.on('provider:attempt', (a) => {
      if (a.provider === 'webhook' && a.outcome === 'sent') started.push(a.startedAt);
    });
    const ids: string[] = [];
    for (let i = 0; i < NOTIFICATIONS; i++) {
      const r = await t.api('POST', '/v1/notifications', {
        to: users,
        category: 'paced',
        channels: ['webhook'],
        title: `n${i}`,
      });
      expect(r.status).toBe(202);
      ids.push(r.json.id);
    }
    let seen: { at: number; id: string }[] = [];
    await eventually(
      async () => {
        seen = await receiver.dump();
        return seen.length >= TOTAL;
      },
      `${TOTAL} webhooks`,
      90_000,
    );
    const at = started.sort((a, b) => a - b);
    const seconds = ((at[at.length - 1] as number) - (at[0] as number)) / 1000;
    expect(at).toHaveLength(TOTAL);
    expect(seconds).toBeGreaterThanOrEqual(20);
    expect(busiestSecond(at)).toBeLessThanOrEqual(PER_SECOND + BURST);
    console.log(
      `paced run: ${TOTAL} sends in ${seconds.toFixed(1)} s; busiest second: ${busiestSecond(at)} started by Herald, ` +
        `${busiestSecond(seen.map((r) => r.at).sort((a, b) => a - b))} arrived at the receiver`,
    );
    // Paced, not starved: the run is close to the rate (4,400 at 200/s is 22 s).
    expect(seconds).toBeLessThan(TOTAL / PER_SECOND + 10);
    // Nothing dropped or doubled: every delivery arrived once and is recorded sent.
    expect(seen).toHaveLength(TOTAL);
    expect(new Set(seen.map((r) => r.id)).size).toBe(TOTAL);
    for (const id of ids) {
      const v = (await t.api('GET', `/v1/notifications/${id}`)).json;
      expect(v.counts).toEqual({ sent: USERS });
    }
  }, 150_000);
});
