/**
 * The rate limiter shared by every process that uses one Redis: the same GCRA token bucket as the
 * in-process adapter (rate-limiter-memory.ts), kept in Redis and decided by one Lua script per take,
 * so two processes cannot both spend the last token (a script runs atomically).
 *
 * Promises (the RateLimiter port's), across every process on the same Redis and key prefix: for one
 * key, in any interval of `t` seconds at most `rps × t + burst` takes are allowed; a refused take
 * consumes nothing; the decision's fields mean what the in-process adapter's mean (both are built by
 * token-bucket-decision.ts from the same two numbers, computed with the same double arithmetic).
 *
 * Storage: one hash per key, `${prefix}herald:rl:{<key>}`, field `tat` — when the bucket is full
 * again (ms, written with 17 significant digits so it reads back exactly). The key expires when the
 * bucket is full (PEXPIRE to the fill time): an absent key is a full bucket, so an idle key costs
 * nothing and no sweep is needed. The hash tag puts the key in one cluster slot (one node decides).
 *
 * Clock: Redis's own (`TIME` in the script; Redis ≥ 5 replicates a script's effects, not the script,
 * so reading the time before writing is allowed). Each process's clock would do for one process, but
 * a shared bucket read on several clocks is only as exact as they agree: a process whose clock runs
 * 200 ms ahead would see 200 ms of refill the others have not, and could take tokens early. With one
 * clock per key (the node that holds it) the bound is exact whatever the processes' clocks say. Its
 * cost: a step of that server's wall clock shifts its buckets (back: refusals for up to the step;
 * forward: refill, at most `burst`), and a failover to a replica changes the clock by their skew.
 * `take(key, now)` passes the caller's time instead (tests); then the key is kept a minute longer,
 * since that clock says nothing about how fast the server's time passes.
 *
 * Redis unreachable or slow: a take never fails and never waits more than `timeoutMs`. It is decided
 * by a bucket of this process's own (the in-process adapter, same rate and burst), and counted in
 * `decidedLocally`. That is failing open to the limit a single process would keep: requests are not
 * refused for Redis's sake (a rate limiter must not take the API down), and each process still stays
 * within `rps × t + burst`, so together they allow at most that times the number of processes — the
 * guarantee Herald had before this adapter. `onUnavailable` is called once per outage (the first
 * take decided locally after one decided by Redis) so that it can be logged; the counter says how
 * many takes it covered.
 */
import type { RateLimitDecision, RateLimiter } from '../core/ports-channels.ts';
import type { RedisClient } from '../redis-connection.ts';
import { MemoryRateLimiter } from './rate-limiter-memory.ts';
import { allowedDecision, type BucketShape, bucketShape, refusedDecision } from './token-bucket-decision.ts';

export interface RedisRateLimiterOptions {
  /** A connection (src/redis-connection.ts); shared with other users unless `closeClient`. */
  client: RedisClient;
  /** Tokens added per second; more than 0. */
  rps: number;
  /** Bucket size, a whole number ≥ 1. */
  burst: number;
  /** Goes before every key (tests: a fresh prefix each). Default ''. */
  prefix?: string;
  /** The longest a take waits for Redis before deciding in this process. Default 250 ms. */
  timeoutMs?: number;
  /** `close()` also closes `client`. Default false: whoever connected it closes it. */
  closeClient?: boolean;
  /** Called when takes start being decided without Redis (once per outage), with the error. */
  onUnavailable?: (error: unknown) => void;
}

/**
 * KEYS[1]: the bucket. ARGV: ms per token, tolerance (ms), now (ms; empty: the server's clock).
 * Returns {1, owed} (allowed; full again in `owed` ms) or {0, ahead} (refused; full in `ahead` ms),
 * the numbers as strings: a Lua number in a reply would be cut to an integer.
 */
const TAKE_SCRIPT = `
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local keep = 0
if now then
  keep = 60000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local from = tonumber(redis.call('HGET', KEYS[1], 'tat'))
if not from or from < now then from = now end
local ahead = from - now
if ahead > tolerance then
  return {0, string.format('%.17g', ahead)}
end
local nxt = from + interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.17g', nxt))
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(nxt - now) + keep))
return {1, string.format('%.17g', nxt - now)}
`;

/** The command `defineCommand` adds: EVALSHA, falling back to EVAL when the server lacks the script. */
const COMMAND = 'heraldRateLimitTake';
type TakeCommand = (key: string, interval: string, tolerance: string, now: string) => Promise<[number, string]>;

const DOWN = new Set(['reconnecting', 'close', 'end']);

export class RedisRateLimiter implements RateLimiter {
  readonly kind = 'redis';
  /** Takes decided by this process's own bucket because Redis did not answer in time (see the header). */
  decidedLocally = 0;
  private readonly shape: BucketShape;
  private readonly client: RedisClient;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly local: MemoryRateLimiter;
  private readonly args: [string, string];
  private reachable = true;

  constructor(private readonly options: RedisRateLimiterOptions) {
    this.shape = bucketShape(options);
    this.client = options.client;
    this.prefix = options.prefix ?? '';
    this.timeoutMs = options.timeoutMs ?? 250;
    this.local = new MemoryRateLimiter({ rps: options.rps, burst: options.burst });
    // String(number) is the shortest text that reads back as the same double: no rounding on the way.
    this.args = [String(this.shape.interval), String(this.shape.tolerance)];
    // Several limiters may share a client (one per paced provider); defining the command again is harmless.
    this.client.defineCommand(COMMAND, { numberOfKeys: 1, lua: TAKE_SCRIPT });
  }

  async take(key: string, now?: number): Promise<RateLimitDecision> {
    // Known to be down (reconnecting after a failure, or closed): do not queue behind the reconnect.
    // Still connecting at start-up: the command waits in ioredis's queue, within the timeout.
    if (DOWN.has(this.client.status)) return this.decideLocally(key, now, new Error(`redis ${this.client.status}`));
    let timer: NodeJS.Timeout | undefined;
    try {
      const command = (this.client as unknown as Record<string, TakeCommand>)[COMMAND] as TakeCommand;
      const reply = await Promise.race([
        command.call(
          this.client,
          `${this.prefix}herald:rl:{${key}}`,
          ...this.args,
          now === undefined ? '' : String(now),
        ),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`redis took longer than ${this.timeoutMs} ms`)), this.timeoutMs);
        }),
      ]);
      this.reachable = true;
      const ms = Number(reply[1]);
      return reply[0] === 1 ? allowedDecision(this.shape, ms) : refusedDecision(this.shape, ms);
    } catch (error) {
      return this.decideLocally(key, now, error);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (!this.options.closeClient) return;
    await this.client.quit().catch(() => this.client.disconnect());
  }

  private decideLocally(key: string, now: number | undefined, error: unknown): RateLimitDecision {
    this.decidedLocally++;
    if (this.reachable) {
      this.reachable = false;
      this.options.onUnavailable?.(error);
    }
    return this.local.takeNow(key, now);
  }
}
