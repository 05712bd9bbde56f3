/**
 * What the store says about a run, read straight from the cluster's database (not through Herald's
 * API, which may be the thing under test): delivery counts per state, waiting until nothing is
 * pending or in flight, and which webhook deliveries the receiver never saw.
 */
import { until } from './api.ts';
import type { Cluster } from './cluster.ts';
import type { CountingReceiver } from './counting-receiver.ts';

export type StateCounts = Record<string, number>;

/** Deliveries per state (of one channel when given). */
export async function stateCounts(cluster: Cluster, channel?: string): Promise<StateCounts> {
  const rows = await cluster.query<{ state: string; n: string }>(
    `SELECT state, count(*) AS n FROM deliveries ${channel ? 'WHERE channel = $1' : ''} GROUP BY state`,
    channel ? [channel] : [],
  );
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

export const total = (c: StateCounts) => Object.values(c).reduce((a, b) => a + b, 0);
export const open = (c: StateCounts) => (c.pending ?? 0) + (c.processing ?? 0);

/** Deliveries in `processing` now: leased by some worker, possibly sent but not yet recorded. */
export async function inFlight(cluster: Cluster): Promise<number> {
  const [row] = await cluster.query<{ n: string }>("SELECT count(*) AS n FROM deliveries WHERE state = 'processing'");
  return Number(row?.n ?? 0);
}

/**
 * Waits until the store holds at least `expected` deliveries (of `channel`) and none of them is
 * pending or processing. Resolves with the last counts read (whether or not it got there): a
 * query that fails (PostgreSQL restarting) just means "not yet".
 */
export async function waitUntilSettled(
  cluster: Cluster,
  expected: number,
  timeoutMs: number,
  channel = 'webhook',
): Promise<StateCounts> {
  let last: StateCounts = {};
  await until(
    async () => {
      last = await stateCounts(cluster, channel).catch(() => last);
      return total(last) >= expected && open(last) === 0;
    },
    timeoutMs,
    500,
  );
  return last;
}

/**
 * Webhook deliveries the store holds (of these notifications, when given) whose webhook-id never
 * reached any of the receivers: lost, whatever state the store gives them.
 */
/** What a receiver saw, by webhook-id (a CountingReceiver, or a thread's ReceiverSnapshot). */
type Received = Pick<CountingReceiver, 'arrivals'> | { arrivals: ReadonlySet<string> };

export async function unseenDeliveries(
  cluster: Cluster,
  receivers: Received | readonly Received[],
  notificationIds?: readonly string[],
): Promise<{ stored: number; unseen: string[] }> {
  const rows = notificationIds
    ? await cluster.query<{ id: string }>(
        "SELECT id FROM deliveries WHERE channel = 'webhook' AND notification_id = ANY($1::uuid[])",
        [notificationIds],
      )
    : await cluster.query<{ id: string }>("SELECT id FROM deliveries WHERE channel = 'webhook'");
  const all = Array.isArray(receivers) ? receivers : [receivers as Received];
  const seen = (id: string) => all.some((r) => r.arrivals.has(id));
  return { stored: rows.length, unseen: rows.map((r) => r.id).filter((id) => !seen(id)) };
}
