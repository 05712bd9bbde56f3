/**
 * Presence in this process: sockets per user with an expiry each. Good for one gateway process;
 * the distributed deployment implements the same port on Redis.
 */
import type { Presence } from '../core/ports.ts';

interface UserPresence {
  sockets: Map<string, number>;
  lastSeen: number;
}

export class MemoryPresence implements Presence {
  private readonly users = new Map<string, UserPresence>();

  async touch(userId: string, socketId: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    let u = this.users.get(userId);
    if (!u) {
      u = { sockets: new Map(), lastSeen: now };
      this.users.set(userId, u);
    }
    u.sockets.set(socketId, now + ttlMs);
    u.lastSeen = now;
  }

  async remove(userId: string, socketId: string): Promise<void> {
    const u = this.users.get(userId);
    if (!u) return;
    u.sockets.delete(socketId);
    u.lastSeen = Date.now();
  }

  async get(userId: string): Promise<{ online: boolean; sockets: number; lastSeen: Date | null }> {
    const u = this.users.get(userId);
    if (!u) return { online: false, sockets: 0, lastSeen: null };
    const now = Date.now();
    for (const [id, until] of u.sockets) if (until <= now) u.sockets.delete(id);
    return { online: u.sockets.size > 0, sockets: u.sockets.size, lastSeen: new Date(u.lastSeen) };
  }
}
