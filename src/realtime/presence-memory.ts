/**
 * Presence in this process (the embedded deployment, where one process holds every socket): sockets
 * per user per gateway node, each node counted while its heartbeat is fresh. The Redis adapter
 * (presence-redis.ts) keeps the same data where every process sees it.
 *
 * Bounded: a user has an entry while some node reports sockets of it (a node that stops refreshing
 * is dropped at the next sweep, at most once per SWEEP_MS, run by `refresh`); once the last one is
 * gone the user moves to a list of recently seen users that keeps only `lastSeen`, and only for the
 * `maxOffline` most recently seen (default 10,000): users who left are forgotten, oldest first, and
 * an unknown user reads as never seen.
 */
import type { Presence } from '../core/ports-realtime.ts';

export interface MemoryPresenceOptions {
  /** How long a node counts after its last report. Default 60 s. */
  ttlMs?: number;
  /** Users without sockets whose `lastSeen` is remembered; default 10,000. */
  maxOffline?: number;
}

const SWEEP_MS = 60_000;

interface UserPresence {
  /** Node → sockets it holds. */
  nodes: Map<string, number>;
  lastSeen: number;
}

export class MemoryPresence implements Presence {
  readonly kind = 'memory';
  /** Users some node holds sockets of (that node may have lapsed, until the next sweep). */
  private readonly online = new Map<string, UserPresence>();
  /** Users without sockets → when last seen; in the order they left (oldest first). */
  private readonly offline = new Map<string, number>();
  /** Node → until when its reports count (epoch ms). */
  private readonly nodeUntil = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly maxOffline: number;
  private sweptAt = Date.now();

  constructor(options: MemoryPresenceOptions = {}) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.maxOffline = options.maxOffline ?? 10_000;
  }

  /** Users this process holds anything for (online, or remembered as recently seen). */
  get size(): number {
    return this.online.size + this.offline.size;
  }

  async nodes(): Promise<string[]> {
    const now = Date.now();
    return [...this.nodeUntil].filter(([, until]) => until > now).map(([node]) => node);
  }

  async opened(node: string, userId: string): Promise<void> {
    const now = Date.now();
    this.alive(node, now);
    const u = this.entry(userId, now);
    u.nodes.set(node, (u.nodes.get(node) ?? 0) + 1);
  }

  async closed(node: string, userId: string): Promise<void> {
    const u = this.online.get(userId);
    if (!u) return;
    const n = (u.nodes.get(node) ?? 0) - 1;
    if (n > 0) u.nodes.set(node, n);
    else u.nodes.delete(node);
    u.lastSeen = Date.now();
    if (u.nodes.size === 0) this.wentOffline(userId, u.lastSeen);
  }

  async refresh(node: string, held: ReadonlyMap<string, number>): Promise<void> {
    const now = Date.now();
    this.alive(node, now);
    for (const [userId, u] of this.online) {
      if (u.nodes.has(node) && !held.has(userId)) {
        u.nodes.delete(node);
        if (u.nodes.size === 0) this.wentOffline(userId, u.lastSeen);
      }
    }
    for (const [userId, sockets] of held) this.entry(userId, now).nodes.set(node, sockets);
    if (now - this.sweptAt >= SWEEP_MS) this.sweep(now);
  }

  async knows(node: string): Promise<boolean> {
    return (this.nodeUntil.get(node) ?? 0) > Date.now();
  }

  async nodesOf(userIds: readonly string[]): Promise<Map<string, string[]>> {
    const now = Date.now();
    const out = new Map<string, string[]>();
    for (const userId of userIds) {
      const nodes = this.liveNodes(this.online.get(userId), now);
      if (nodes.length) out.set(userId, nodes);
    }
    return out;
  }

  async get(userId: string): Promise<{ online: boolean; sockets: number; lastSeen: Date | null }> {
    const u = this.online.get(userId);
    if (!u) {
      const seen = this.offline.get(userId);
      return { online: false, sockets: 0, lastSeen: seen === undefined ? null : new Date(seen) };
    }
    const now = Date.now();
    let sockets = 0;
    for (const node of this.liveNodes(u, now)) sockets += u.nodes.get(node) ?? 0;
    return { online: sockets > 0, sockets, lastSeen: new Date(u.lastSeen) };
  }

  async close(): Promise<void> {}

  private alive(node: string, now: number): void {
    this.nodeUntil.set(node, now + this.ttlMs);
  }

  private entry(userId: string, now: number): UserPresence {
    let u = this.online.get(userId);
    if (!u) {
      u = { nodes: new Map(), lastSeen: now };
      this.online.set(userId, u);
      this.offline.delete(userId);
    }
    u.lastSeen = now;
    return u;
  }

  private liveNodes(u: UserPresence | undefined, now: number): string[] {
    if (!u) return [];
    return [...u.nodes.keys()].filter((node) => (this.nodeUntil.get(node) ?? 0) > now);
  }

  /** Drops the entries of nodes that stopped refreshing. */
  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [node, until] of this.nodeUntil) if (until <= now) this.nodeUntil.delete(node);
    for (const [userId, u] of this.online) {
      for (const node of u.nodes.keys()) if (!this.nodeUntil.has(node)) u.nodes.delete(node);
      if (u.nodes.size === 0) this.wentOffline(userId, u.lastSeen);
    }
  }

  private wentOffline(userId: string, lastSeen: number): void {
    this.online.delete(userId);
    this.offline.delete(userId);
    this.offline.set(userId, lastSeen);
    if (this.offline.size > this.maxOffline) {
      const oldest = this.offline.keys().next().value;
      if (oldest !== undefined) this.offline.delete(oldest);
    }
  }
}
