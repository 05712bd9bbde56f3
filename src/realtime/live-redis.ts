/**
 * Real-time fan-out between processes through Redis sharded pub/sub, routed by Presence: a frame goes
 * only to the gateway nodes that hold its user's sockets, never to every node.
 *
 * - `publish` looks up the nodes of all the call's users at once (`Presence.nodesOf`), then sends one
 *   SPUBLISH per node with that node's frames (live-frame-codec.ts), to the node's own channel
 *   `{prefix}herald:live:{<node>}`. Frames for this process's own node go straight to its handler.
 *   On a single server, a publish of few users does both in one script (`RedisPresence.routeFrames`):
 *   one round trip instead of two, on the path of every single-recipient notification.
 *   Within one publish, a node receives its frames in the order given; successive publishes of one
 *   process are sent in call order. `publish` never throws: frames it could not send are counted
 *   (`failed`) and left to the store, which sessions read at the next gap, `resync` or reconnect.
 * - `subscribe` listens on the node's channel through a connection of its own (a duplicate of the
 *   client). When that connection was lost and is back, the frames published meanwhile are gone:
 *   once the channel is subscribed again (a single server: the SSUBSCRIBE is acknowledged; a Cluster:
 *   a probe sent to the channel came back), the handler's `resync` runs — once per loss, never at
 *   the first connect.
 *
 * Why sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis ≥ 7): in a Cluster a classic PUBLISH is copied to
 * every shard over the cluster bus, whoever listens; a sharded one stays on the shard that owns the
 * channel's slot, so routed traffic costs one shard, and the gateways' channels (hash tag = node)
 * spread over the shards. On a single server the two behave the same.
 *
 * Best effort by design (the port's contract): no acknowledgement, no redelivery, no buffering
 * beyond the client's offline queue during a short reconnect.
 */
import { Cluster } from 'ioredis';
import type { LiveFrames, LiveHandler, Presence, RoutedFrame } from '../core/ports-realtime.ts';
import type { RedisClient } from '../redis-connection.ts';
import { decodeFrames, encodeFrames, isProbe, isTopicAccepted, PROBE, TOPIC_ACCEPTED } from './live-frame-codec.ts';
import { RedisPresence } from './presence-redis.ts';

/**
 * Up to this many users, a publish on a single Redis server looks up and sends in one script (one
 * round trip, every frame shipped to Redis whether or not anyone holds its user); beyond, it looks
 * up first and ships only the frames of users some gateway holds.
 */
const ONE_TRIP_MAX_USERS = 16;

/** After a Cluster subscriber reconnects, how often a probe is sent until one comes back. */
const PROBE_EVERY_MS = 500;

export interface RedisLiveFramesOptions {
  /** Prepended to every channel (tests). Default ''. */
  prefix?: string;
}

export class RedisLiveFrames implements LiveFrames {
  readonly kind = 'redis';
  private readonly prefix: string;
  private node: string | null = null;
  private handler: LiveHandler | null = null;
  private sub: RedisClient | null = null;
  private channel = '';
  /** Settles when the previous publish has issued its sends (keeps sends in call order). */
  private issued: Promise<void> = Promise.resolve();
  /** Settles when the previous publish has handed this node's frames over (keeps them in call order). */
  private delivered: Promise<void> = Promise.resolve();
  /** The single-server fast path (`RedisPresence.routeFrames`), or null on a Cluster. */
  private readonly oneTrip: RedisPresence | null;
  private receivedFrames = 0;
  private failedFrames = 0;
  private badMessages = 0;
  private resyncs = 0;
  /** Set while probes go out to this node's channel (a Cluster subscriber came back, not yet proven live). */
  private probing: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly client: RedisClient,
    private readonly presence: Presence,
    options: RedisLiveFramesOptions = {},
  ) {
    this.prefix = options.prefix ?? '';
    this.oneTrip = presence instanceof RedisPresence && !(client instanceof Cluster) ? presence : null;
  }

  /** Frames this process received from other processes for its sockets. */
  get received(): number {
    return this.receivedFrames;
  }

  /**
   * Frames (per destination node) that `publish` could not route or send, and topic signals that
   * `topicAccepted` could not: left to the store (read at the next gap, resync, reconnect or read).
   */
  get failed(): number {
    return this.failedFrames;
  }

  /** Messages on this node's channel that could not be decoded (another version; dropped). */
  get undecodable(): number {
    return this.badMessages;
  }

  /** Times the handler was told to resync (the subscriber connection came back). */
  get resynced(): number {
    return this.resyncs;
  }

  async publish(frames: readonly RoutedFrame[]): Promise<void> {
    if (frames.length === 0) return;
    const oneTrip = this.inOneTrip(frames);
    // The lookup starts at once (lookups of successive publishes pipeline); sending waits its turn.
    const lookup = oneTrip ? null : this.route(frames);
    const previousIssue = this.issued;
    const previousDelivery = this.delivered;
    let issuedDone!: () => void;
    let deliveredDone!: () => void;
    this.issued = new Promise<void>((resolve) => {
      issuedDone = resolve;
    });
    this.delivered = new Promise<void>((resolve) => {
      deliveredDone = resolve;
    });
    const sends: Promise<void>[] = [];
    let local: Promise<RoutedFrame[] | undefined>;
    try {
      await previousIssue;
      if (oneTrip) {
        local = this.routeInRedis(frames, oneTrip);
      } else {
        const perNode = await lookup;
        for (const [node, list] of perNode ?? []) {
          if (node === this.node && this.handler) continue;
          sends.push(
            this.client.spublish(this.channelOf(node), encodeFrames(list)).then(
              () => {},
              () => {
                this.failedFrames += list.length;
              },
            ),
          );
        }
        local = Promise.resolve(this.node === null ? undefined : perNode?.get(this.node));
      }
    } finally {
      issuedDone();
    }
    try {
      const own = await local;
      await previousDelivery;
      if (own && this.handler) {
        try {
          this.handler.frames(own);
        } catch {
          this.failedFrames += own.length;
        }
      }
    } finally {
      deliveredDone();
    }
    await Promise.all(sends);
  }

  async topicAccepted(): Promise<void> {
    let nodes: string[];
    try {
      nodes = await this.presence.nodes();
    } catch {
      this.failedFrames++;
      return;
    }
    for (const node of nodes) {
      if (node === this.node && this.handler) continue;
      void this.client.spublish(this.channelOf(node), TOPIC_ACCEPTED).catch(() => {
        this.failedFrames++;
      });
    }
    if (this.handler) this.handler.topicAccepted();
  }

  async subscribe(node: string, handler: LiveHandler): Promise<void> {
    if (this.sub) throw new Error(`live frames: this process already subscribed as ${this.node}`);
    this.node = node;
    this.handler = handler;
    this.channel = this.channelOf(node);
    // Named after its channel, so CLIENT LIST shows which gateway a subscriber connection serves.
    const connectionName = this.channel;
    const sub =
      this.client instanceof Cluster
        ? this.client.duplicate([], { shardedSubscribers: true, redisOptions: { connectionName } })
        : this.client.duplicate({ connectionName });
    this.sub = sub;
    // Connection errors are followed by reconnects (and then a resync); nothing to do per error.
    sub.on('error', () => {});
    sub.on('smessageBuffer', (_channel: Buffer, message: Buffer) => this.onMessage(message));
    await sub.ssubscribe(this.channel);
    if (sub instanceof Cluster) {
      // The subscriber group emits this after every reset of its connections — also while it first
      // connects (after `ssubscribe` above resolved), and before the server has acknowledged the
      // new SSUBSCRIBE. So: only after a loss, and only once a probe came back on the channel.
      let lost = false;
      for (const event of ['-node', '-subscriber', 'close']) {
        sub.on(event, () => {
          lost = true;
        });
      }
      sub.on('subscribersReady', () => {
        if (!lost) return;
        lost = false;
        this.probeThenResync();
      });
    } else {
      // 'ready' after the first one: a reconnect. ioredis subscribes again by itself; resync only
      // once that is acknowledged, so no frame falls between the store read and the subscription.
      sub.on('ready', () => {
        sub.ssubscribe(this.channel).then(
          () => this.resync(),
          () => {
            // The connection dropped again: its next 'ready' tries again.
          },
        );
      });
    }
  }

  async close(): Promise<void> {
    const sub = this.sub;
    this.sub = null;
    this.handler = null;
    this.node = null;
    if (!sub) return;
    this.stopProbing();
    sub.removeAllListeners('ready');
    sub.removeAllListeners('subscribersReady');
    await sub.sunsubscribe(this.channel).catch(() => {});
    sub.disconnect();
  }

  private channelOf(node: string): string {
    return `${this.prefix}herald:live:{${node}}`;
  }

  /** The frames' users (each frame's index into them), if they go in one round trip (a single server, few users); else null. */
  private inOneTrip(frames: readonly RoutedFrame[]): { users: string[]; of: number[] } | null {
    if (!this.oneTrip) return null;
    const index = new Map<string, number>();
    const of: number[] = [];
    for (const f of frames) {
      let i = index.get(f.userId);
      if (i === undefined) {
        if (index.size === ONE_TRIP_MAX_USERS) return null;
        i = index.size;
        index.set(f.userId, i);
      }
      of.push(i);
    }
    return { users: [...index.keys()], of };
  }

  /** Lookup and sends in one script; resolves to this node's frames, in order (none if it holds none of the users). */
  private async routeInRedis(
    frames: readonly RoutedFrame[],
    { users, of }: { users: string[]; of: number[] },
  ): Promise<RoutedFrame[] | undefined> {
    let mine: boolean[];
    try {
      mine = await (this.oneTrip as RedisPresence).routeFrames(
        users,
        frames.map((f, k) => [of[k] as number, encodeFrames([f])] as const),
        this.handler ? this.node : null,
        `${this.prefix}herald:live:{`,
        '}',
      );
    } catch {
      this.failedFrames += frames.length;
      return undefined;
    }
    const local = frames.filter((_, k) => mine[of[k] as number]);
    return local.length ? local : undefined;
  }

  /** Each node's frames in the given order; null if the lookup failed (the frames count as failed). */
  private async route(frames: readonly RoutedFrame[]): Promise<Map<string, RoutedFrame[]> | null> {
    let where: Map<string, string[]>;
    try {
      where = await this.presence.nodesOf([...new Set(frames.map((f) => f.userId))]);
    } catch {
      this.failedFrames += frames.length;
      return null;
    }
    const perNode = new Map<string, RoutedFrame[]>();
    for (const f of frames) {
      for (const node of where.get(f.userId) ?? []) {
        const list = perNode.get(node);
        if (list) list.push(f);
        else perNode.set(node, [f]);
      }
    }
    return perNode;
  }

  private onMessage(message: Buffer): void {
    const handler = this.handler;
    if (!handler) return;
    if (isProbe(message)) {
      // The subscription is live: what was published while it was not is read from the store.
      if (this.stopProbing()) this.resync();
      return;
    }
    if (isTopicAccepted(message)) {
      handler.topicAccepted();
      return;
    }
    let frames: RoutedFrame[];
    try {
      frames = decodeFrames(message);
    } catch {
      this.badMessages++;
      return;
    }
    this.receivedFrames += frames.length;
    handler.frames(frames);
  }

  /**
   * Sends a probe to this node's channel every PROBE_EVERY_MS until one comes back, then resyncs.
   * A probe received proves the subscription live at that moment, whatever happened before it; one
   * loop serves several resets in a row.
   */
  private probeThenResync(): void {
    if (this.probing || !this.sub) return;
    const send = (): void => {
      void this.client.spublish(this.channel, PROBE).catch(() => {
        // Redis unreachable: the next probe tries again.
      });
      this.probing = setTimeout(send, PROBE_EVERY_MS);
      this.probing.unref();
    };
    send();
  }

  /** Stops the probe loop; whether one was running. */
  private stopProbing(): boolean {
    if (!this.probing) return false;
    clearTimeout(this.probing);
    this.probing = null;
    return true;
  }

  private resync(): void {
    if (!this.handler) return;
    this.resyncs++;
    this.handler.resync();
  }
}
