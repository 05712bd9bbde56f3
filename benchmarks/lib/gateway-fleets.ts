/**
 * WebSocket clients spread over several gateway processes (the distributed scenarios): one client
 * process (lib/ws-fleet.ts) per gateway, each holding the users assigned to that gateway, so that
 * the connects to every gateway run at once and no gateway's clients share an event loop with
 * another's. Latency samples use the clock every process shares (monotonicMs).
 */
import { performance } from 'node:perf_hooks';
import type { Member } from './cluster.ts';
import { BENCH_JWT_SECRET } from './user-token.ts';
import { type Fleet, startFleet } from './ws-fleet.ts';
import type { ConnectResult } from './ws-fleet-protocol.ts';

export interface GatewayFleet {
  gateway: Member;
  fleet: Fleet;
  /** The users whose sockets this fleet opens on its gateway. */
  users: string[];
}

export interface GatewayFleets {
  parts: GatewayFleet[];
  /** Connects every part's users to its gateway, all parts at once; `ms` is the wall time of the slowest. */
  connect(options: { concurrency: number; reconnect: boolean; ack: boolean; timeoutMs: number }): Promise<{
    results: ConnectResult[];
    ms: number;
  }>;
  /** Waits until each part has `expected(part)` samples (or the timeout); the latest receipt time of all. */
  awaitSamples(
    expected: (part: GatewayFleet) => number,
    timeoutMs: number,
  ): Promise<{ samples: number; lastAt: number }>;
  /** Every part's latency samples, ms; `clear` starts a new series. */
  samples(clear: boolean): Promise<number[]>;
  /** Notification id and receipt time (monotonicMs) of every part's samples since the last clear. */
  receipts(): Promise<{ id: string; at: number }[]>;
  disconnect(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
  logTails(): string;
}

/** `users[i]` goes to `gateways[i % gateways.length]`. */
export async function startGatewayFleets(
  gateways: readonly Member[],
  users: readonly string[],
): Promise<GatewayFleets> {
  const parts: GatewayFleet[] = [];
  try {
    for (const [k, gateway] of gateways.entries()) {
      parts.push({ gateway, fleet: await startFleet(), users: users.filter((_, i) => i % gateways.length === k) });
    }
  } catch (e) {
    await Promise.all(parts.map((p) => p.fleet.stop()));
    throw e;
  }
  return {
    parts,
    async connect(o) {
      const t0 = performance.now();
      const results = await Promise.all(
        parts.map((p) =>
          p.fleet.connect({ url: p.gateway.herald.url, users: p.users, secret: BENCH_JWT_SECRET, ...o }),
        ),
      );
      return { results, ms: performance.now() - t0 };
    },
    async awaitSamples(expected, timeoutMs) {
      const got = await Promise.all(parts.map((p) => p.fleet.awaitSamples(expected(p), timeoutMs)));
      return { samples: got.reduce((s, g) => s + g.samples, 0), lastAt: Math.max(...got.map((g) => g.lastAt)) };
    },
    async samples(clear) {
      const all = await Promise.all(parts.map((p) => p.fleet.samples(clear)));
      return all.flatMap((a) => [...a]);
    },
    async receipts() {
      const all = await Promise.all(parts.map((p) => p.fleet.receipts()));
      return all.flatMap((r) => r.ids.map((id, i) => ({ id, at: r.at[i] as number })));
    },
    async disconnect(timeoutMs) {
      await Promise.all(parts.map((p) => p.fleet.disconnect(timeoutMs)));
    },
    async stop() {
      await Promise.all(parts.map((p) => p.fleet.stop()));
    },
    logTails: () => parts.map((p) => `--- clients of ${p.gateway.name}\n${p.fleet.logTail()}`).join('\n'),
  };
}
