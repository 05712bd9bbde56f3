/**
 * The distributed bus: one Redis stream per lane, read through the consumer group `herald`, and a
 * sorted set per lane for jobs due later. Keys: `${prefix}{herald:bus:<lane>}:ready` (the stream)
 * and `…:delayed` (the sorted set, scored by runAt in ms); the hash tag puts both in one Redis
 * Cluster slot, so the scripts (bus-redis-streams-scripts.ts) touch them together.
 *
 * Guarantees:
 * - At-least-once. An entry handed out stays in the group's pending list until it is acked; one not
 *   acked within `visibilityMs` (its taker died) is taken over by the next claim of any consumer
 *   (XAUTOCLAIM). Publishing an id twice, or a take-over, may hand an id out twice: the store's
 *   compare-and-set decides who works.
 * - Never drops a job it was given: no MAXLEN trimming, `publish` never refuses. `full` says when a
 *   lane's stream holds `maxLength` entries or more, for ingest to stop accepting.
 * - An acked entry is deleted (XACK and XDEL in one script), so a stream's length is the entries
 *   not acked yet and `waiting` = length − pending list is exact. (XINFO GROUPS `lag` was measured
 *   on Redis 7.0 and is not: it turns null once an entry past the group's last-delivered id is
 *   deleted.)
 * - Delayed jobs: a job due within `horizonMs` waits in the sorted set; a promoter script moves due
 *   members into the stream atomically (ZRANGEBYSCORE, XADD each, ZREM). It runs on a timer, at the
 *   earliest score it knows of and at least every `promoteEveryMs` (other processes add members
 *   too), and before a claim when a member this process knows of is due. A job due beyond the
 *   horizon is not held here at all: the store holds it, and the reconciler publishes it once it
 *   comes within the horizon.
 * - Redis loses what it holds on a FLUSHALL or a restart without persistence. The bus carries on —
 *   the group is created again when a read answers NOGROUP — and the reconciler republishes the
 *   store's overdue rows (it does so while `waiting` is 0).
 *
 * Waking: `waitForWork` wakes at once when this process publishes or promotes due work into the
 * lane; across processes, one blocking `XREAD BLOCK … STREAMS ready <group's last-delivered id>` per
 * lane on a connection of its own answers as soon as the stream has an entry no consumer has been
 * handed (including one that arrived between the caller's empty claim and the wait, which
 * `XREAD … $` would miss). It reads nothing for the group: the claim that follows does.
 *
 * Errors: a Redis outage makes `publish`, `claim`, `ack` and `waiting` throw; the worker retries
 * after its poll, and what was lost is republished by the reconciler.
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { TakeFrom } from '../core/ports.ts';
import type { Bus } from '../core/ports-bus.ts';
import { type BusJob, LANES, type Lane } from '../core/types.ts';
import type { RedisClient } from '../redis-connection.ts';
import { runScript, SCRIPTS, type Script } from './bus-redis-streams-scripts.ts';

export interface RedisStreamsBusOptions {
  /** Goes before every key (tests). Default ''. */
  prefix?: string;
  /** This process's consumer name in the group; unique per process. Default host-pid-random. */
  consumer?: string;
  /** How long a handed-out entry may stay unacked before another claim takes it over (HERALD_LEASE_MS). Default 30,000. */
  visibilityMs?: number;
  /** Per-lane stream length at which `full` turns true (HERALD_BUS_MAX_LENGTH). Default 1,000,000. */
  maxLength?: number;
  /** How far ahead of its due time a published job is held (in the delayed set). Default 15 minutes. */
  horizonMs?: number;
  /** How often, at most, the delayed sets are checked for due members. Default 1,000. */
  promoteEveryMs?: number;
  /** How often dead consumers are looked for, per lane (default 10 minutes), and how idle one must be (default 1 h, at least 10 × visibilityMs). */
  pruneEveryMs?: number;
  pruneIdleMs?: number;
  /** Makes the connection a blocking read may hold (one per lane that waits). Default `client.duplicate()`. */
  blockingConnection?: () => RedisClient;
}

const GROUP = 'herald';
/** Defaults: how often a process looks for dead consumers in a lane's group, and how idle one must be to go. */
const PRUNE_EVERY_MS = 10 * 60_000;
const PRUNE_IDLE_MS = 60 * 60_000;
/** Ids per script call: keeps each call's argument list (and Lua's unpack) small. */
const CHUNK = 1000;

type StreamEntry = [id: string, fields: string[] | null];

export class RedisStreamsBus implements Bus {
  readonly kind = 'redis-streams';
  readonly queueIsStore = false;
  readonly horizonMs: number;
  private readonly prefix: string;
  private readonly consumer: string;
  private readonly visibilityMs: number;
  private readonly maxLength: number;
  private readonly promoteEveryMs: number;
  private readonly makeBlocking: () => RedisClient;

  /** Stream entry ids this consumer was handed, per lane and delivery id (an id published twice has several). */
  private readonly entries = new Map<Lane, Map<string, string[]>>(LANES.map((l) => [l, new Map()]));
  /** Last known stream length per lane (from every script's answer). */
  private readonly lengths = new Map<Lane, number>();
  /** Earliest score known to be in each lane's delayed set (Infinity: none known). */
  private readonly earliest = new Map<Lane, number>(LANES.map((l) => [l, Number.POSITIVE_INFINITY]));
  private readonly lastAutoclaim = new Map<Lane, number>();
  private readonly lastPrune = new Map<Lane, number>();
  private readonly pruneEveryMs: number;
  private readonly pruneIdleMs: number;
  private readonly waiters = new Map<Lane, Set<() => void>>(LANES.map((l) => [l, new Set()]));
  private readonly watching = new Set<Lane>();
  private readonly blockers = new Map<Lane, RedisClient>();
  private promoteTimer: NodeJS.Timeout | null = null;
  private promoteAt = Number.POSITIVE_INFINITY;
  private promoting: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly client: RedisClient,
    options: RedisStreamsBusOptions = {},
  ) {
    this.prefix = options.prefix ?? '';
    this.consumer = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.visibilityMs = options.visibilityMs ?? 30_000;
    this.maxLength = options.maxLength ?? 1_000_000;
    this.horizonMs = options.horizonMs ?? 15 * 60_000;
    this.promoteEveryMs = options.promoteEveryMs ?? 1_000;
    this.pruneEveryMs = options.pruneEveryMs ?? PRUNE_EVERY_MS;
    this.pruneIdleMs = Math.max(options.pruneIdleMs ?? PRUNE_IDLE_MS, 10 * this.visibilityMs);
    // Redis and Cluster both have duplicate(); the cast only joins their signatures (no arguments here).
    this.makeBlocking = options.blockingConnection ?? (() => (client as Redis).duplicate());
    this.schedulePromote(this.promoteEveryMs);
  }

  get full(): boolean {
    for (const n of this.lengths.values()) if (n >= this.maxLength) return true;
    return false;
  }

  private ready(lane: Lane): string {
    return `${this.prefix}{herald:bus:${lane}}:ready`;
  }
  private delayed(lane: Lane): string {
    return `${this.prefix}{herald:bus:${lane}}:delayed`;
  }

  async publish(jobs: readonly BusJob[]): Promise<void> {
    const now = Date.now();
    const byLane = new Map<Lane, { due: string[]; later: string[] }>();
    for (const j of jobs) {
      const at = j.runAt.getTime();
      if (at > now + this.horizonMs) continue; // the store holds it; the reconciler brings it back in time
      let l = byLane.get(j.lane);
      if (!l) {
        l = { due: [], later: [] };
        byLane.set(j.lane, l);
      }
      if (at <= now) l.due.push(j.id);
      else {
        l.later.push(String(at), j.id);
        if (at < (this.earliest.get(j.lane) as number)) this.earliest.set(j.lane, at);
      }
    }
    const calls: Promise<void>[] = [];
    for (const [lane, { due, later }] of byLane) {
      const keys = [this.ready(lane), this.delayed(lane)];
      for (let i = 0; i < due.length; i += CHUNK) {
        const part = due.slice(i, i + CHUNK);
        calls.push(this.run(SCRIPTS.publish, keys, [part.length, ...part]).then((n) => this.setLength(lane, n)));
      }
      for (let i = 0; i < later.length; i += 2 * CHUNK) {
        const part = later.slice(i, i + 2 * CHUNK);
        calls.push(this.run(SCRIPTS.publish, keys, [0, ...part]).then((n) => this.setLength(lane, n)));
      }
    }
    await Promise.all(calls);
    for (const [lane, { due, later }] of byLane) {
      if (due.length) this.wake(lane);
      if (later.length) this.schedulePromote((this.earliest.get(lane) as number) - Date.now());
    }
  }

  /**
   * Forgets the group's consumers that hold nothing and have been idle far longer than any live one
   * (processes that died or were replaced: every deploy leaves one name per process); what they held
   * was taken over by XAUTOCLAIM already, so nothing is lost with them.
   */
  private async pruneConsumers(lane: Lane): Promise<void> {
    const consumers = (await this.client.xinfo('CONSUMERS', this.ready(lane), GROUP)) as unknown[][];
    for (const c of consumers) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < c.length; i += 2) info.set(String(c[i]), c[i + 1]);
      const name = String(info.get('name'));
      if (name === this.consumer || Number(info.get('pending')) > 0 || Number(info.get('idle')) < this.pruneIdleMs)
        continue;
      await this.client.xgroup('DELCONSUMER', this.ready(lane), GROUP, name);
    }
  }

  async claim(lane: Lane, max: number): Promise<TakeFrom> {
    if (this.closed || max <= 0) return { ids: [] };
    if ((this.earliest.get(lane) as number) <= Date.now()) await this.promote([lane]);
    const key = this.ready(lane);
    const got: StreamEntry[] = [];
    const now = Date.now();
    if (now - (this.lastPrune.get(lane) ?? 0) >= this.pruneEveryMs) {
      this.lastPrune.set(lane, now);
      // Before the take-over below: a consumer whose entries it is about to take stays until next time.
      await this.pruneConsumers(lane).catch(() => {
        // Tidying only: tried again at the next prune.
      });
    }
    if (now - (this.lastAutoclaim.get(lane) ?? 0) >= this.visibilityMs / 4) {
      this.lastAutoclaim.set(lane, now);
      // Entries handed to a consumer that has not acked them within visibilityMs: its process died.
      const answer = (await this.withGroup(lane, () =>
        this.client.xautoclaim(key, GROUP, this.consumer, this.visibilityMs, '0-0', 'COUNT', max),
      )) as [string, StreamEntry[], string[]?];
      got.push(...answer[1]);
    }
    if (got.length < max) {
      const answer = (await this.withGroup(lane, () =>
        this.client.xreadgroup('GROUP', GROUP, this.consumer, 'COUNT', max - got.length, 'STREAMS', key, '>'),
      )) as [string, StreamEntry[]][] | null;
      for (const [, entries] of answer ?? []) got.push(...entries);
    }
    const held = this.entries.get(lane) as Map<string, string[]>;
    // Every id comes back, even one this process holds already: a taker that lost it (an error
    // between claim and ack) gets it again after the visibility timeout instead of never.
    const ids = new Set<string>();
    for (const [entryId, fields] of got) {
      const id = fields?.[1];
      if (!id) continue; // deleted while pending: nothing to hand out
      const known = held.get(id);
      if (!known) held.set(id, [entryId]);
      else if (!known.includes(entryId)) known.push(entryId);
      ids.add(id);
    }
    return { ids: [...ids] };
  }

  async ack(lane: Lane, ids: readonly string[]): Promise<void> {
    const held = this.entries.get(lane) as Map<string, string[]>;
    const entryIds: string[] = [];
    for (const id of ids) {
      const e = held.get(id);
      if (!e) continue;
      held.delete(id);
      entryIds.push(...e);
    }
    const calls: Promise<void>[] = [];
    for (let i = 0; i < entryIds.length; i += CHUNK)
      calls.push(
        this.run(SCRIPTS.ack, [this.ready(lane)], [GROUP, ...entryIds.slice(i, i + CHUNK)]).then((n) =>
          this.setLength(lane, n),
        ),
      );
    await Promise.all(calls);
  }

  async waiting(lane: Lane): Promise<number> {
    return Math.max(0, Number(await this.run(SCRIPTS.waiting, [this.ready(lane)], [GROUP])));
  }

  waitForWork(lane: Lane, timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const set = this.waiters.get(lane) as Set<() => void>;
      const deadline = Date.now() + timeoutMs;
      const done = Object.assign(
        () => {
          clearTimeout(timer);
          set.delete(done);
          resolve();
        },
        { deadline },
      );
      const timer = setTimeout(done, timeoutMs);
      set.add(done);
      if (!this.watching.has(lane)) void this.watch(lane);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.promoteTimer) clearTimeout(this.promoteTimer);
    this.promoteTimer = null;
    for (const lane of LANES) this.wake(lane);
    for (const c of this.blockers.values()) c.disconnect();
    this.blockers.clear();
    await this.promoting;
  }

  /**
   * While `lane` has waiters: blocks on the lane's own connection until the stream has an entry past
   * the group's last-delivered id (work nobody has been handed), then wakes them. On an error the
   * waiters simply run into their own timeouts.
   */
  private async watch(lane: Lane): Promise<void> {
    this.watching.add(lane);
    const set = this.waiters.get(lane) as Set<(() => void) & { deadline?: number }>;
    try {
      let conn = this.blockers.get(lane);
      if (!conn) {
        conn = this.makeBlocking();
        // Its errors reach the xread below; without a listener ioredis also prints each reconnect's.
        conn.on('error', () => {});
        this.blockers.set(lane, conn);
      }
      while (!this.closed && set.size) {
        const after = String(await this.run(SCRIPTS.lastDelivered, [this.ready(lane)], [GROUP]));
        let until = 0;
        for (const w of set) until = Math.max(until, w.deadline ?? 0);
        const block = Math.max(1, until - Date.now());
        const got = await conn.xread('COUNT', 1, 'BLOCK', block, 'STREAMS', this.ready(lane), after);
        if (got) {
          this.wake(lane);
          break;
        }
      }
    } catch {
      // Redis unreachable or the bus closing: the waiters' own timers resolve them.
    } finally {
      this.watching.delete(lane);
    }
  }

  private wake(lane: Lane): void {
    for (const w of [...(this.waiters.get(lane) ?? [])]) w();
  }

  private setLength(lane: Lane, n: unknown): void {
    this.lengths.set(lane, Number(n));
  }

  /** Arms the promoter to run in `ms` (sooner than it was armed for; never later than promoteEveryMs). */
  private schedulePromote(ms: number): void {
    if (this.closed) return;
    const delay = Math.max(0, Math.min(ms, this.promoteEveryMs));
    const at = Date.now() + delay;
    if (this.promoteTimer && this.promoteAt <= at) return;
    if (this.promoteTimer) clearTimeout(this.promoteTimer);
    this.promoteAt = at;
    this.promoteTimer = setTimeout(() => {
      this.promoteTimer = null;
      this.promoteAt = Number.POSITIVE_INFINITY;
      this.promoting = this.promote(LANES)
        .catch(() => {
          // Redis unreachable: the next tick tries again; nothing is lost from the sorted set.
        })
        .finally(() => {
          this.promoting = null;
          let next = Number.POSITIVE_INFINITY;
          for (const e of this.earliest.values()) next = Math.min(next, e);
          this.schedulePromote(next - Date.now());
        });
    }, delay);
    this.promoteTimer.unref();
  }

  /** Moves the due members of `lanes`' delayed sets into their streams; wakes the lanes that got some. */
  private async promote(lanes: readonly Lane[]): Promise<void> {
    await Promise.all(
      lanes.map(async (lane) => {
        for (;;) {
          const [moved, first, length] = (await this.run(
            SCRIPTS.promote,
            [this.ready(lane), this.delayed(lane)],
            [Date.now(), CHUNK],
          )) as [number, string, number];
          this.earliest.set(lane, first === '' ? Number.POSITIVE_INFINITY : Number(first));
          this.setLength(lane, length);
          if (moved > 0) this.wake(lane);
          if (moved < CHUNK) return;
        }
      }),
    );
  }

  /**
   * Runs `fn`; if the group is missing (never created, or Redis was flushed: NOGROUP), creates it —
   * from the stream's start, so entries published since are handed out — and runs `fn` again.
   */
  private async withGroup<T>(lane: Lane, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOGROUP')) throw e;
      await this.client.xgroup('CREATE', this.ready(lane), GROUP, '0', 'MKSTREAM').catch((err: unknown) => {
        // Another consumer created it first.
        if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err;
      });
      return fn();
    }
  }

  private run(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    return runScript(this.client, s, keys, args);
  }
}
