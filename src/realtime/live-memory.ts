/**
 * Real-time fan-out within one process: frames go straight to this process's gateway, in the
 * publisher's own call (no copy, no hop). The embedded deployment's adapter; with several processes
 * the Redis one (live-redis.ts) routes them to the gateways that hold each user.
 */
import type { LiveFrames, LiveHandler, RoutedFrame } from '../core/ports-realtime.ts';

/** One settled promise for every publish: the hot path allocates none. */
const DONE = Promise.resolve();

export class MemoryLiveFrames implements LiveFrames {
  readonly kind = 'in-process';
  /** Nothing comes from other processes. */
  readonly received = 0;
  private handler: LiveHandler | null = null;

  publish(frames: readonly RoutedFrame[]): Promise<void> {
    if (frames.length) this.handler?.frames(frames);
    return DONE;
  }

  async topicAccepted(): Promise<void> {
    this.handler?.topicAccepted();
  }

  async subscribe(_node: string, handler: LiveHandler): Promise<void> {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.handler = null;
  }
}
