/**
 * Presence in this process: sockets per user with an expiry each. Good for one gateway process;
 * a deployment with several gateways needs an adapter of the same port on a shared store.
 *
 * Bounded: a user with sockets has an entry while it has any (each socket is removed on close, or
 * expires on its own: expired sockets are dropped when the user is looked at, and in a sweep of
 * every user at most once per SWEEP_MS, run by `touch`); once the last one is gone the user moves to a list of recently seen users
 * that keeps only `lastSeen`, and only for the `maxOffline` most recently seen (default 10,000):
 * users who left are forgotten, oldest first, and an unknown user reads as never seen.
 */
import type { Presence } from '../core/ports.ts';

export interface MemoryPresenceOptions {
  /** Users without sockets whose `lastSeen` is remembered; default 10,000. */
  maxOffline?: number;
}

const SWEEP_MS = 60_000;

interface UserPresence {
  /** Socket id → expiry (epoch ms). */
  sockets: Map<string, number>;
  lastSeen: number;
}

export class MemoryPresence implements Presence {
  /** Users with at least one socket (that may have expired, until the next look). */
  private readonly online = new Map<string, UserPresence>();
  /** Users without sockets → when last seen; in the order they left (oldest first). */
  private readonly offline = new Map<string, number>();
  private readonly maxOffline: number;
  private sweptAt = Date.now();

  constructor(options: MemoryPresenceOptions = {}) {
    this.maxOffline = options.maxOffline ?? 10_000;
  }

  /** Users this process holds anything for (online, or remembered as recently seen). */
  get size(): number {
    return this.online.size + this.offline.size;
  }

  async touch(userId: string, socketId: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    let u = this.online.get(userId);
    if (!u) {
      u = { sockets: new Map(), lastSeen: now };
      this.online.set(userId, u);
      this.offline.delete(userId);
    }
    u.sockets.set(socketId, now + ttlMs);
    u.lastSeen = now;
    if (now - this.sweptAt >= SWEEP_MS) this.sweep(now);
  }

  async remove(userId: string, socketId: string): Promise<void> {
    const u = this.online.get(userId);
    if (!u) return;
    u.sockets.delete(socketId);
    u.lastSeen = Date.now();
    if (u.sockets.size === 0) this.wentOffline(userId, u.lastSeen);
  }

  async get(userId: string): Promise<{ online: boolean; sockets: number; lastSeen: Date | null }> {
    const u = this.online.get(userId);
    if (!u) {
      const seen = this.offline.get(userId);
      return { online: false, sockets: 0, lastSeen: seen === undefined ? null : new Date(seen) };
    }
    this.dropExpired(userId, u, Date.now());
    return { online: u.sockets.size > 0, sockets: u.sockets.size, lastSeen: new Date(u.lastSeen) };
  }

  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [userId, u] of this.online) this.dropExpired(userId, u, now);
  }

  private dropExpired(userId: string, u: UserPresence, now: number): void {
    for (const [id, until] of u.sockets) if (until <= now) u.sockets.delete(id);
    if (u.sockets.size === 0) this.wentOffline(userId, u.lastSeen);
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
