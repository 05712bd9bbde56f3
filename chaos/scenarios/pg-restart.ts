/**
 * pg-restart: PostgreSQL stops under a running cluster and comes back; Herald rides it out.
 *
 * A private PostgreSQL (test/support/postgres-private.ts: the shared server is never stopped)
 * holds the store of an api, a worker and a scheduler process. Producers keep posting webhook
 * notifications (10 recipients each, about 50 POSTs/s); a third of the way in PostgreSQL is
 * stopped (fast shutdown: every session terminated) for 5 s and started again.
 *
 * Verdict: while it is down the API answers 503 (counted; at least one, else the outage was not
 * seen) and nothing but 202 or 503; every notification answered 202 is in the store with all its
 * deliveries, every one of them `sent` and seen by the receiver (lost = 0; a 202 means stored);
 * duplicates at most the deliveries the store saw attempted more than once (sends whose outcome could
 * not be recorded while it was down, taken again once their lease lapsed); and no Herald process
 * restarted or died.
 */
import { privatePostgres } from '../../test/support/postgres-private.ts';
import {
  ChaosApi,
  type Cluster,
  inFlight,
  type Scenario,
  sleep,
  startCluster,
  startCountingReceiver,
  unseenDeliveries,
  until,
  verdict,
} from '../lib.ts';

const SIZES = {
  full: { postingMs: 40_000, stopAtMs: 12_000, settleMs: 180_000 },
  short: { postingMs: 12_000, stopAtMs: 4_000, settleMs: 90_000 },
};
const RECIPIENTS = 10;
const DOWN_MS = 5_000;
const LANES = 4;
/** Per lane, between POSTs: about 50 POSTs/s in all. */
const PAUSE_MS = 80;
// A short lease: what was sent but not recorded while PostgreSQL was down comes back soon after.
const ENV = { HERALD_LEASE_MS: '6000', HERALD_WEBHOOK_TIMEOUT_MS: '4000', HERALD_PG_CONNECT_TIMEOUT_MS: '3000' };

export const pgRestart: Scenario = async (size, log) => {
  const s = SIZES[size];
  const postgres = await privatePostgres();
  const receiver = await startCountingReceiver();
  let cluster: Cluster | null = null;
  let api: ChaosApi | null = null;
  try {
    log(`private PostgreSQL on port ${postgres.port}; starting api, worker, scheduler`);
    cluster = await startCluster({ api: 1, worker: 1, scheduler: 1, databaseUrl: postgres.url, env: ENV, log });
    const c = cluster;
    const pids = c.processes.map((p) => p.pid());
    api = new ChaosApi(
      c.withRole('api').map((p) => p.url),
      10_000,
    );
    const users = Array.from({ length: RECIPIENTS }, (_, i) => `u-${i}`);
    await api.putUsers(users, () => ({ webhookUrl: receiver.url }));

    const accepted: string[] = [];
    const statuses = new Map<number, number>();
    /** The first answer of each status other than 202 and 503, and when (ms after PostgreSQL stopped) each came. */
    const oddities = new Map<number, { first: string; atMs: number[] }>();
    let stoppedAt = Number.POSITIVE_INFINITY;
    let unanswered = 0;
    let posting = true;
    let n = 0;
    const lane = async () => {
      while (posting) {
        const i = n++;
        try {
          const r = await (api as ChaosApi).call('POST', '/v1/notifications', {
            to: users,
            category: 'chaos.pg-restart',
            channels: ['webhook'],
            title: `pg-restart #${i}`,
            data: { i },
          });
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status === 202) accepted.push(r.json.id as string);
          else if (r.status !== 503) {
            const o = oddities.get(r.status) ?? { first: JSON.stringify(r.json).slice(0, 300), atMs: [] };
            o.atMs.push(Date.now() - stoppedAt);
            oddities.set(r.status, o);
          }
        } catch {
          unanswered++;
        }
        await sleep(PAUSE_MS);
      }
    };
    const lanes = Promise.all(Array.from({ length: LANES }, lane));
    await sleep(s.stopAtMs);
    const flying = await inFlight(c);
    log(`stopping PostgreSQL (${accepted.length} accepted so far, ${flying} deliveries in flight)`);
    stoppedAt = Date.now();
    await postgres.stop();
    await sleep(DOWN_MS);
    log('starting PostgreSQL again');
    await postgres.start();
    const downMs = Date.now() - stoppedAt;
    const readyAgain = await until(
      async () => {
        const answers = await Promise.all(
          c.processes.map((p) => fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch(() => null)),
        );
        return answers.every((r) => r?.status === 200);
      },
      60_000,
      200,
    );
    log(`PostgreSQL was down ${downMs} ms; every process ready again: ${readyAgain}`);
    await sleep(Math.max(0, s.postingMs - (Date.now() - stoppedAt) - s.stopAtMs));
    posting = false;
    await lanes;
    const expected = accepted.length * RECIPIENTS;
    log(`${n} POSTs: ${JSON.stringify(Object.fromEntries(statuses))}, ${unanswered} unanswered; waiting for sends`);
    let stored = 0;
    let unseen: string[] = [];
    let notSent = -1;
    await until(
      async () => {
        const rows = await c.query<{ n: string }>(
          "SELECT count(*) AS n FROM deliveries WHERE notification_id = ANY($1::uuid[]) AND state <> 'sent'",
          [accepted],
        );
        notSent = Number(rows[0]?.n);
        ({ stored, unseen } = await unseenDeliveries(c, receiver, accepted));
        return notSent === 0 && stored >= expected;
      },
      s.settleMs,
      500,
    ).catch(() => false);
    const lost = unseen.length + Math.max(0, expected - stored);
    // A webhook arrives twice only if its delivery was attempted twice (its outcome could not be
    // recorded while PostgreSQL was down, so its lease lapsed and it was taken again): the deliveries
    // the store saw attempted more than once bound the duplicates. The count of `processing` rows
    // just before the stop undercounts: a take can start between that count and the stop.
    const [reattempted] = await c
      .query<{ n: string }>(
        'SELECT count(*) AS n FROM deliveries WHERE notification_id = ANY($1::uuid[]) AND attempts > 1',
        [accepted],
      )
      .catch(() => [{ n: '0' }]);
    const bound = Math.max(flying, Number(reattempted?.n ?? 0));
    const other = [...oddities].map(
      ([code, o]) =>
        `${o.atMs.length}× ${code} (${Math.min(...o.atMs)}…${Math.max(...o.atMs)} ms after the stop; first: ${o.first})`,
    );
    const restarted = c.processes.filter((p, i) => p.starts() !== 1 || p.pid() !== pids[i]);
    const r503 = statuses.get(503) ?? 0;
    const v = verdict({
      scenario: 'pg-restart',
      sent: expected,
      delivered: receiver.delivered(),
      lost,
      duplicated: receiver.duplicated(),
      duplicateBound: { max: bound, why: 'deliveries attempted more than once (in flight when PostgreSQL stopped)' },
      facts: { posts: n, accepted: accepted.length, '503s': r503, unanswered, downMs },
      checks: [
        { ok: r503 > 0, failure: 'no 503 while PostgreSQL was down (was the outage seen?)' },
        { ok: other.length === 0, failure: `answers other than 202/503: ${other.join(', ')}` },
        { ok: notSent === 0, failure: `${notSent} deliveries of 202'd notifications not sent` },
        { ok: readyAgain, failure: 'not every process answered /readyz 200 within 60 s of the restart' },
        { ok: restarted.length === 0, failure: `restarted or died: ${restarted.map((p) => p.name).join(', ')}` },
        { ok: receiver.splitIds() === 0, failure: `${receiver.splitIds()} repeats under a second webhook-id` },
        { ok: receiver.badSignatures() === 0, failure: `${receiver.badSignatures()} bad signatures` },
      ],
    });
    return {
      ...v,
      details: {
        statuses: Object.fromEntries(statuses),
        oddities: Object.fromEntries(oddities),
        unanswered,
        stored,
        unseen: unseen.slice(0, 20),
        flying,
        reattempted: Number(reattempted?.n ?? 0),
        ...(v.pass ? {} : { outputs: c.outputs() }),
      },
    };
  } catch (e) {
    if (cluster) for (const p of cluster.processes) log(`--- ${p.name} output (tail)\n${p.output().slice(-3_000)}`);
    throw e;
  } finally {
    await api?.close();
    await cluster?.stop();
    await receiver.close();
    await postgres.cleanup();
  }
};
