/**
 * retry-storm: deliveries to a provider that fails half of all requests.
 *
 * An in-bench webhook receiver answers 503 to each request with probability 0.5 (independently,
 * retries included) and 200 otherwise. `--deliveries` webhook deliveries (default 10,000: 100
 * notifications × 100 users) go to it under a short retry policy (base 50 ms, 5 attempts, at most
 * 1 s between two): each ends `sent`, or `dead` after five 503s (expected 0.5⁵ ≈ 3 %). The run
 * ends when every delivery is `sent` or `dead` (polled through the API) or after 10 minutes.
 *
 * Checked: `lost` — deliveries in no final state, or missing — must be 0; the attempts counted in
 * `/metrics` (`herald_delivery_attempts_total`, every outcome) must equal the attempts the store
 * holds (`deliveries.attempts`, read after Herald stopped) and the requests the receiver saw;
 * every delivery the receiver answered 200 is `sent`. The run fails when one of these does not hold.
 * `deferrals` (`herald_delivery_deferrals_total`): deliveries handed back because the receiver
 * already had HERALD_WEBHOOK_MAX_PER_DESTINATION requests in hand — not attempts, so not counted above.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { forEachLimit, HeraldClient } from './lib/api-client.ts';
import { startHeraldProcess } from './lib/herald-process.ts';
import type { Scenario } from './lib/scenario.ts';
import { sleep } from './lib/stats.ts';

const RECIPIENTS = 100;
const RETRY_ENV = {
  HERALD_RETRY_BASE_MS: '50',
  HERALD_RETRY_MAX_ATTEMPTS: '5',
  HERALD_RETRY_MAX_DELAY_MS: '1000',
};

interface FlakyReceiver {
  url: string;
  requests: () => number;
  /** Delivery ids (webhook-id) answered 200. */
  accepted: Set<string>;
  close(): Promise<void>;
}

async function startFlakyReceiver(failRate: number): Promise<FlakyReceiver> {
  let requests = 0;
  const accepted = new Set<string>();
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      if (Math.random() < failRate) {
        res.statusCode = 503;
      } else {
        res.statusCode = 200;
        accepted.add(String(req.headers['webhook-id'] ?? ''));
      }
      res.end();
    });
  });
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests: () => requests,
    accepted,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Sum of a Prometheus counter's samples whose labels include every `where` pair, by one label. */
function counterBy(text: string, name: string, by: string, where: Record<string, string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labels = Object.fromEntries(
      [...line.slice(name.length + 1, line.indexOf('}')).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (!Object.entries(where).every(([k, v]) => labels[k] === v)) continue;
    const key = labels[by] ?? '';
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

export const scenario: Scenario = {
  name: 'retry-storm',
  summary: 'deliveries to a receiver failing half of all requests: all end sent or dead, none lost',
  headline: 'rate',
  columns: [
    { key: 'deliveries', label: 'deliveries' },
    { key: 'sent', label: 'sent' },
    { key: 'dead', label: 'dead' },
    { key: 'lost', label: 'lost', better: 'lower' },
    { key: 'attempts', label: 'attempts (store)' },
    { key: 'metricAttempts', label: 'attempts (/metrics)' },
    { key: 'requests', label: 'requests (receiver)' },
    { key: 'deferrals', label: 'deferrals' },
    { key: 'seconds', label: 'total s', digits: 2 },
    { key: 'rate', label: 'attempts/s', better: 'higher' },
  ],
  async trial(store, o, log) {
    const receiver = await startFlakyReceiver(0.5);
    log(`starting Herald (${store})`);
    const herald = await startHeraldProcess({
      store,
      env: { ...RETRY_ENV, ...o.env },
      ...(o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {}),
    });
    const client = new HeraldClient(herald.url, 16);
    try {
      const users = Array.from({ length: RECIPIENTS }, (_, i) => `storm-user-${i}`);
      await client.putUsers(users, () => ({ webhookUrl: receiver.url }));
      const notifications = Math.ceil(o.deliveries / RECIPIENTS);
      const total = notifications * RECIPIENTS;
      log(`posting ${notifications} notifications × ${RECIPIENTS} recipients`);
      const t0 = performance.now();
      const ids: string[] = [];
      await forEachLimit(
        Array.from({ length: notifications }, (_, i) => i),
        16,
        async (i) => {
          ids.push(
            await client.send({
              to: users,
              category: 'bench.retry-storm',
              channels: ['webhook'],
              title: 'Invoice ready',
              body: `Invoice #${i}`,
            }),
          );
        },
      );
      // Every delivery sent or dead, through the API.
      const final = { sent: 0, dead: 0 };
      const deadline = Date.now() + 600_000;
      for (;;) {
        const counts = { sent: 0, dead: 0 };
        await forEachLimit(ids, 8, async (id) => {
          const r = await client.call('GET', `/v1/notifications/${id}?limit=1`);
          const c = (r.json?.counts ?? {}) as Record<string, number>;
          counts.sent += c.sent ?? 0;
          counts.dead += c.dead ?? 0;
        });
        Object.assign(final, counts);
        if (counts.sent + counts.dead >= total || Date.now() > deadline) break;
        log(`${counts.sent} sent, ${counts.dead} dead of ${total}`);
        await sleep(1000);
      }
      const seconds = (performance.now() - t0) / 1000;
      const metrics = await (await fetch(`${herald.url}/metrics`)).text();
      const byOutcome = counterBy(metrics, 'herald_delivery_attempts_total', 'outcome', { channel: 'webhook' });
      const metricAttempts = [...byOutcome.values()].reduce((a, b) => a + b, 0);
      const deferrals = [
        ...counterBy(metrics, 'herald_delivery_deferrals_total', 'channel', { channel: 'webhook' }).values(),
      ].reduce((a, b) => a + b, 0);
      await herald.stop();
      const rows = await herald.inspect((q) =>
        q(`SELECT state, count(*)::int AS n, sum(attempts)::int AS attempts FROM deliveries GROUP BY state`),
      );
      const sentIds = await herald.inspect((q) => q(`SELECT id::text FROM deliveries WHERE state = 'sent'`));
      const inStore = Object.fromEntries(rows.map((r) => [r.state as string, r.n as number]));
      const attempts = rows.reduce((s, r) => s + (r.attempts as number), 0);
      const sent = inStore.sent ?? 0;
      const dead = inStore.dead ?? 0;
      const lost = total - sent - dead;
      const sentSet = new Set(sentIds.map((r) => r.id as string));
      const acceptedNotSent = [...receiver.accepted].filter((id) => !sentSet.has(id)).length;
      const problems = [
        lost !== 0 && `${lost} deliveries neither sent nor dead (${JSON.stringify(inStore)})`,
        metricAttempts !== attempts && `/metrics counted ${metricAttempts} attempts, the store holds ${attempts}`,
        receiver.requests() !== attempts && `the receiver saw ${receiver.requests()} requests for ${attempts} attempts`,
        acceptedNotSent !== 0 && `${acceptedNotSent} deliveries answered 200 are not sent`,
        (final.sent !== sent || final.dead !== dead) &&
          `the API reported ${final.sent} sent / ${final.dead} dead, the store ${sent} / ${dead}`,
      ].filter(Boolean);
      if (problems.length) throw new Error(`retry-storm: ${problems.join('; ')}`);
      return {
        rows: [
          {
            variant: 'webhook, p(503) = 0.5',
            deliveries: total,
            sent,
            dead,
            lost,
            attempts,
            metricAttempts,
            requests: receiver.requests(),
            deferrals,
            seconds,
            rate: Math.round(attempts / seconds),
          },
        ],
        details: { byOutcome: Object.fromEntries(byOutcome), states: inStore, retry: RETRY_ENV },
      };
    } catch (e) {
      process.stderr.write(`Herald log:\n${herald.logTail()}\n`);
      throw e;
    } finally {
      await client.close();
      await herald.cleanup();
      await receiver.close();
    }
  },
};
