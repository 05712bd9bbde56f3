/**
 * Wake-ups between processes for the queue-table bus in the distributed mode (ADR 17): the
 * deliveries table stays the queue — nothing can be lost between bus and store — and Redis carries
 * only "lane X has work", so that an idle worker in another process takes new work at once instead
 * of at its next poll (HERALD_POLL_MS).
 *
 * Lossy by design: a wake-up that does not arrive (Redis down, a subscriber reconnecting) costs that
 * poll interval, nothing else. Coalesced: while one wake-up of a lane is on its way, further ones
 * for it are folded into a single one sent after it, so a busy ingest sends a few per lane per
 * round trip, not one per commit. One sharded pub/sub channel for all lanes (`{herald:wake}`: one
 * cluster shard carries them, and they are few).
 */
import { Cluster } from 'ioredis';
import { LANES, type Lane } from '../core/types.ts';
import type { RedisClient } from '../redis-connection.ts';
import type { Wakeups } from './bus-queue-table.ts';

export interface RedisWakeupsOptions {
  /** Goes before the channel's name (tests). Default ''. */
  prefix?: string;
}

export class RedisWakeups implements Wakeups {
  readonly kind = 'redis';
  private readonly channel: string;
  private readonly inFlight = new Set<Lane>();
  private readonly again = new Set<Lane>();
  private sub: RedisClient | null = null;
  /** Wake-ups sent and received (tests, metrics). */
  sent = 0;
  received = 0;

  constructor(
    private readonly client: RedisClient,
    options: RedisWakeupsOptions = {},
  ) {
    this.channel = `${options.prefix ?? ''}herald:wake:{herald:wake}`;
  }

  notify(lane: Lane): void {
    if (this.inFlight.has(lane)) {
      this.again.add(lane);
      return;
    }
    this.inFlight.add(lane);
    this.sent++;
    this.client
      .spublish(this.channel, lane)
      .catch(() => {
        // Lossy: the workers' poll finds the work.
      })
      .finally(() => {
        this.inFlight.delete(lane);
        if (this.again.delete(lane)) this.notify(lane);
      });
  }

  async listen(onWake: (lane: Lane) => void): Promise<void> {
    const sub =
      this.client instanceof Cluster
        ? this.client.duplicate([], { shardedSubscribers: true, redisOptions: { connectionName: this.channel } })
        : this.client.duplicate({ connectionName: this.channel });
    this.sub = sub;
    // Reconnects are ioredis's (it subscribes again); a wake-up missed meanwhile costs a poll.
    sub.on('error', () => {});
    sub.on('smessage', (_channel: string, message: string) => {
      if ((LANES as readonly string[]).includes(message)) {
        this.received++;
        onWake(message as Lane);
      }
    });
    await sub.ssubscribe(this.channel);
  }

  async close(): Promise<void> {
    const sub = this.sub;
    this.sub = null;
    if (!sub) return;
    await sub.sunsubscribe(this.channel).catch(() => {});
    sub.disconnect();
  }
}
