/**
 * Presence in Redis (single node or Cluster), shared by every gateway and worker process.
 *
 * Layout (every key carries a hash tag, `prefix` goes before it):
 * - `{prefix}herald:p:{<userId>}` — a hash per user: `n:<node>` → sockets that node holds, and
 *   `seen` → last open, close or heartbeat (epoch ms). Users spread over the cluster's slots.
 *   While a node holds the user the key expires `ttlMs` after the last write (every heartbeat
 *   rewrites it); once no node holds it, only `seen` is left and the key expires `lastSeenMs` later.
 * - `{prefix}{herald:nodes}` — a sorted set, node → until when its reports count (epoch ms), one key
 *   for the whole deployment; entries of nodes gone for `NODE_RETAIN_MS` are dropped by heartbeats,
 *   and the key itself expires if no node reports for that long.
 *
 * Guarantees:
 * - `opened` resolves once Redis has acknowledged both the user's count and the node's liveness, so
 *   any process's `nodesOf` issued afterwards names this node.
 * - A node counts only until the expiry it last reported. Readers cache the node set for at most
 *   CACHE_MS, but a cached expiry is only ever a lower bound (expiries only grow), so a node is never
 *   counted after its expiry; a node missing from the cache (new) makes the reader fetch the set again.
 * - `refresh` issues every command in one tick, so auto-pipelining sends one batch per Redis node.
 *
 * Not done here: clock skew between processes is not corrected (expiries are the writer's clock;
 * keep hosts within NTP accuracy of each other, far below `ttlMs`). The client is the caller's:
 * `close` does not disconnect it.
 */
import type { Presence } from '../core/ports-realtime.ts';
import type { RedisClient } from '../redis-connection.ts';

export interface RedisPresenceOptions {
  /** Prepended to every key (tests). Default ''. */
  prefix?: string;
  /** How long a node counts after its last report. Default 60 s (Herald's heartbeat is shorter). */
  ttlMs?: number;
  /** How long a user nobody holds is remembered (`lastSeen`). Default 24 h. */
  lastSeenMs?: number;
}

/** How old a cached node set may be before a lookup that finds an expired entry fetches it again. */
const CACHE_MS = 1_000;
/** How long a node that stopped reporting stays in the node set (so readers know it is dead). */
const NODE_RETAIN_MS = 60 * 60_000;

/** `n:<node>` += 1, `seen` = now; the key lives `ttl` (a node holds the user now). */
const OPENED = `
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HSET', KEYS[1], 'seen', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
`;

/** A heartbeat's count: `n:<node>` = sockets, `seen` = now, the key lives `ttl` (one command, not two: ~1.7× cheaper per user). */
const HELD = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'seen', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
`;

/** `n:<node>` -= 1 (the field goes at 0), `seen` = now; once only `seen` is left it lives `lastSeen`. */
const CLOSED = `
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('HSET', KEYS[1], 'seen', ARGV[2])
if redis.call('HLEN', KEYS[1]) <= 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
`;

/** Drops `n:<node>`; if that was the last node, the key keeps only `seen`, for `lastSeen`. */
const GONE = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 and redis.call('HLEN', KEYS[1]) <= 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
`;

/**
 * `routeFrames` on a single server: the lookup and the sends in one round trip. KEYS = the users'
 * keys, then the node set; ARGV = now, this process's node ('' if none), the channel's head and
 * tail, then per frame its user's index in KEYS and the frame encoded alone (live-frame-codec.ts:
 * a version byte, then the record). Each live node other than `own` gets one SPUBLISH: a version
 * byte, then the records of its users' frames in ARGV order. Returns 1/0 per user: whether `own`
 * holds it.
 */
const ROUTE = `
local nodesKey = KEYS[#KEYS]
local now = tonumber(ARGV[1])
local own = ARGV[2]
local aliveUntil, nodesOf, mine = {}, {}, {}
for i = 1, #KEYS - 1 do
  local nodes = {}
  mine[i] = 0
  for _, f in ipairs(redis.call('HKEYS', KEYS[i])) do
    if string.sub(f, 1, 2) == 'n:' then
      local node = string.sub(f, 3)
      if aliveUntil[node] == nil then aliveUntil[node] = tonumber(redis.call('ZSCORE', nodesKey, node) or 0) end
      if aliveUntil[node] > now then
        if node == own then mine[i] = 1 else nodes[#nodes + 1] = node end
      end
    end
  end
  nodesOf[i] = nodes
end
local order, parts = {}, {}
for j = 5, #ARGV, 2 do
  local blob = ARGV[j + 1]
  for _, node in ipairs(nodesOf[tonumber(ARGV[j])]) do
    local list = parts[node]
    if list == nil then
      list = { string.sub(blob, 1, 1) }
      parts[node] = list
      order[#order + 1] = node
    end
    list[#list + 1] = string.sub(blob, 2)
  end
end
for _, node in ipairs(order) do
  redis.call('SPUBLISH', ARGV[3] .. node .. ARGV[4], table.concat(parts[node]))
end
return mine
`;

/** The scripts, as defineCommand adds them (EVALSHA, EVAL on NOSCRIPT). */
interface PresenceCommands {
  heraldRouteFrames(...args: (string | number | Buffer)[]): Promise<number[]>;
  heraldPresenceOpened(key: string, field: string, now: number, ttlMs: number): Promise<unknown>;
  heraldPresenceHeld(key: string, field: string, sockets: number, now: number, ttlMs: number): Promise<unknown>;
  heraldPresenceClosed(key: string, field: string, now: number, ttlMs: number, lastSeenMs: number): Promise<unknown>;
  heraldPresenceGone(key: string, field: string, lastSeenMs: number): Promise<unknown>;
}

const NODE_FIELD = 'n:';

export class RedisPresence implements Presence {
  readonly kind = 'redis';
  private readonly redis: RedisClient & PresenceCommands;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly lastSeenMs: number;
  private readonly nodesKey: string;
  /** Node → until when it counts, as last read from Redis (or written by this process). */
  private readonly nodeUntil = new Map<string, number>();
  /** When the node set was last fetched (epoch ms): the cache's age. */
  private fetchedAt = Number.NEGATIVE_INFINITY;
  /**
   * Orders fetches and lookups within this process: a lookup takes a number when it starts, a fetch
   * when it is sent, so "a fetch sent after this lookup started" holds even within one millisecond.
   */
  private clock = 0;
  /** The number of the latest fetch that has completed. */
  private fetchedTick = 0;
  private fetching: { tick: number; done: Promise<void> } | null = null;
  /** Per node this process reports for: users it may have a field in (last heartbeat ∪ opened since). */
  private readonly reported = new Map<string, Set<string>>();

  constructor(client: RedisClient, options: RedisPresenceOptions = {}) {
    this.prefix = options.prefix ?? '';
    this.ttlMs = options.ttlMs ?? 60_000;
    this.lastSeenMs = options.lastSeenMs ?? 24 * 60 * 60_000;
    this.nodesKey = `${this.prefix}{herald:nodes}`;
    client.defineCommand('heraldPresenceOpened', { numberOfKeys: 1, lua: OPENED });
    client.defineCommand('heraldPresenceHeld', { numberOfKeys: 1, lua: HELD });
    client.defineCommand('heraldPresenceClosed', { numberOfKeys: 1, lua: CLOSED });
    client.defineCommand('heraldPresenceGone', { numberOfKeys: 1, lua: GONE });
    client.defineCommand('heraldRouteFrames', { lua: ROUTE });
    this.redis = client as RedisClient & PresenceCommands;
  }

  async opened(node: string, userId: string): Promise<void> {
    const now = Date.now();
    this.reportedBy(node).add(userId);
    // Both in one tick (one pipeline per Redis node); the socket counts once both are acknowledged.
    await Promise.all([
      this.redis.heraldPresenceOpened(this.userKey(userId), NODE_FIELD + node, now, this.ttlMs),
      this.aliveUntil(node, now + this.ttlMs),
    ]);
  }

  async closed(node: string, userId: string): Promise<void> {
    await this.redis.heraldPresenceClosed(
      this.userKey(userId),
      NODE_FIELD + node,
      Date.now(),
      this.ttlMs,
      this.lastSeenMs,
    );
  }

  async refresh(node: string, held: ReadonlyMap<string, number>): Promise<void> {
    const now = Date.now();
    const field = NODE_FIELD + node;
    const before = this.reportedBy(node);
    const nowHeld = new Set<string>();
    const writes: Promise<unknown>[] = [this.aliveUntil(node, now + this.ttlMs)];
    writes.push(
      this.redis.zremrangebyscore(this.nodesKey, '-inf', now - NODE_RETAIN_MS),
      this.redis.pexpire(this.nodesKey, NODE_RETAIN_MS),
    );
    for (const [userId, sockets] of held) {
      if (sockets <= 0) continue;
      nowHeld.add(userId);
      writes.push(this.redis.heraldPresenceHeld(this.userKey(userId), field, sockets, now, this.ttlMs));
    }
    const dropped: string[] = [];
    for (const userId of before) {
      if (nowHeld.has(userId)) continue;
      dropped.push(userId);
      writes.push(this.redis.heraldPresenceGone(this.userKey(userId), field, this.lastSeenMs));
    }
    // Users opened while this heartbeat is in flight stay in the set (added to the new one).
    this.reported.set(node, nowHeld);
    try {
      await Promise.all(writes);
    } catch (e) {
      // The next heartbeat retries the removals that may not have happened.
      for (const userId of dropped) nowHeld.add(userId);
      throw e;
    }
  }

  async knows(node: string): Promise<boolean> {
    const until = await this.redis.zscore(this.nodesKey, node);
    return until !== null && Number(until) > Date.now();
  }

  async nodes(): Promise<string[]> {
    await this.fetchNodes(++this.clock);
    const now = Date.now();
    return [...this.nodeUntil].filter(([, until]) => until > now).map(([node]) => node);
  }

  async nodesOf(userIds: readonly string[]): Promise<Map<string, string[]>> {
    const lookup = ++this.clock;
    const refetch = this.maybeFetch(lookup);
    const fields = await Promise.all(userIds.map((u) => this.redis.hkeys(this.userKey(u))));
    await refetch;
    const out = new Map<string, string[]>();
    const unknown = await this.resolveUnknown(fields.flat(), lookup);
    const now = Date.now();
    for (let i = 0; i < userIds.length; i++) {
      const userId = userIds[i] as string;
      const nodes: string[] = [];
      for (const f of fields[i] ?? []) {
        if (!f.startsWith(NODE_FIELD)) continue;
        const node = f.slice(NODE_FIELD.length);
        if (this.isLive(node, now, unknown)) nodes.push(node);
        else this.forgetIfLongDead(userId, node, now);
      }
      if (nodes.length) out.set(userId, nodes);
    }
    return out;
  }

  /**
   * Single server only (a Cluster would put the users' keys and the nodes' channels in other
   * slots): looks up where each user is held and sends each live node but `own` the frames of its
   * users, in the order given (`frames[k]`: the index of its user in `userIds`, and the frame
   * encoded alone), all in one script — one round trip, against two for `nodesOf` then the sends.
   * Resolves to whether `own` holds each user. A node's channel is `channelHead + node + channelTail`.
   */
  async routeFrames(
    userIds: readonly string[],
    frames: readonly (readonly [user: number, encoded: Buffer])[],
    own: string | null,
    channelHead: string,
    channelTail: string,
  ): Promise<boolean[]> {
    const mine = await this.redis.heraldRouteFrames(
      userIds.length + 1,
      ...userIds.map((u) => this.userKey(u)),
      this.nodesKey,
      Date.now(),
      own ?? '',
      channelHead,
      channelTail,
      ...frames.flatMap(([user, encoded]) => [user + 1, encoded]),
    );
    return mine.map((m) => m === 1);
  }

  async get(userId: string): Promise<{ online: boolean; sockets: number; lastSeen: Date | null }> {
    const lookup = ++this.clock;
    const refetch = this.maybeFetch(lookup);
    const h = await this.redis.hgetall(this.userKey(userId));
    await refetch;
    const unknown = await this.resolveUnknown(Object.keys(h), lookup);
    const now = Date.now();
    let sockets = 0;
    for (const [f, v] of Object.entries(h)) {
      if (!f.startsWith(NODE_FIELD)) continue;
      const node = f.slice(NODE_FIELD.length);
      if (this.isLive(node, now, unknown)) sockets += Number(v);
      else this.forgetIfLongDead(userId, node, now);
    }
    const seen = h['seen'];
    return { online: sockets > 0, sockets, lastSeen: seen === undefined ? null : new Date(Number(seen)) };
  }

  async close(): Promise<void> {
    this.reported.clear();
  }

  private userKey(userId: string): string {
    return `${this.prefix}herald:p:{${userId}}`;
  }

  private reportedBy(node: string): Set<string> {
    let s = this.reported.get(node);
    if (!s) {
      s = new Set();
      this.reported.set(node, s);
    }
    return s;
  }

  private async aliveUntil(node: string, until: number): Promise<void> {
    // GT: a late write (an older heartbeat) never shortens a node's life.
    await this.redis.zadd(this.nodesKey, 'GT', until, node);
    if ((this.nodeUntil.get(node) ?? 0) < until) this.nodeUntil.set(node, until);
  }

  /** Fetches the node set if the cache is older than CACHE_MS (in the same tick as the caller's reads). */
  private maybeFetch(lookup: number): Promise<void> | undefined {
    if (Date.now() - this.fetchedAt <= CACHE_MS) return undefined;
    return this.fetchNodes(lookup);
  }

  /** One fetch of the node set sent after lookup `after` started (joins one in flight if it was). */
  private fetchNodes(after: number): Promise<void> {
    if (this.fetching && this.fetching.tick > after) return this.fetching.done;
    const tick = ++this.clock;
    const startedAt = Date.now();
    const done = this.redis.zrange(this.nodesKey, 0, '-1', 'WITHSCORES').then((reply) => {
      // RESP2 answers [member, score, member, score…]; RESP3 answers [[member, score]…].
      const flat = (reply as unknown[]).flat() as (string | number)[];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const node = String(flat[i]);
        const until = Number(flat[i + 1]);
        if ((this.nodeUntil.get(node) ?? 0) < until) this.nodeUntil.set(node, until);
      }
      if (startedAt > this.fetchedAt) this.fetchedAt = startedAt;
      if (tick > this.fetchedTick) this.fetchedTick = tick;
    });
    const entry = { tick, done };
    this.fetching = entry;
    void done
      .finally(() => {
        if (this.fetching === entry) this.fetching = null;
      })
      .catch(() => {});
    return done;
  }

  /**
   * A node this process has not heard of may have opened a socket after the cache was read: fetch
   * once (a fetch begun after the lookup started). Returns the nodes still unknown (dead for now).
   */
  private async resolveUnknown(fields: readonly string[], lookup: number): Promise<Set<string>> {
    const unknown = new Set<string>();
    for (const f of fields) {
      if (f.startsWith(NODE_FIELD) && !this.nodeUntil.has(f.slice(NODE_FIELD.length))) {
        unknown.add(f.slice(NODE_FIELD.length));
      }
    }
    if (unknown.size === 0 || this.fetchedTick > lookup) return unknown;
    await this.fetchNodes(lookup);
    for (const node of unknown) if (this.nodeUntil.has(node)) unknown.delete(node);
    return unknown;
  }

  private isLive(node: string, now: number, unknown: ReadonlySet<string>): boolean {
    if (unknown.has(node)) return false;
    return (this.nodeUntil.get(node) ?? 0) > now;
  }

  /**
   * A node dead for longer than `ttlMs` will not come back with this field (a restarted node reports
   * everything it holds at its next heartbeat): drop the field so the user's key can expire.
   */
  private forgetIfLongDead(userId: string, node: string, now: number): void {
    const until = this.nodeUntil.get(node);
    if (until === undefined || until > now - this.ttlMs) return;
    void this.redis.heraldPresenceGone(this.userKey(userId), NODE_FIELD + node, this.lastSeenMs).catch(() => {
      // Tried again at the next lookup of this user.
    });
  }
}
