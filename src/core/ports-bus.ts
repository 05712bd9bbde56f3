/** The bus port (the others are in ports.ts). Adapters: src/bus. */

import type { TakeFrom } from './ports.ts';
import type { BusJob, Lane } from './types.ts';

/**
 * Work distributor. At-least-once: a claimed id may be handed out again (after a crash, a lost ack
 * or a reclaim), which is harmless because the store's compare-and-set decides who really works.
 * The bus is not the source of truth: the store is. Every job the bus holds is a pending store row;
 * a job the bus lost (Redis flushed, a publisher that died between its commit and its publish) is
 * found again by the reconciler (src/core/maintenance.ts) and published again.
 *
 * Who holds delayed work: the bus holds a job published with a `runAt` up to `horizonMs` ahead and
 * hands it out once due; a job due further ahead (a `sendAt` next year, a long retry back-off) is
 * held by the store alone, and the reconciler publishes it when it comes within the horizon.
 * Publishing the same id again while the bus still holds it may hand it out twice (harmless).
 *
 * A taker acks every id it was handed once the store says it is finished with it — started and
 * recorded, or no longer pending (somebody else took it). An id the store left pending (its row was
 * locked by another taker at that moment, or it is not due yet: DeliveryStore.stillPending) is
 * published again with its due time before it is acked, never simply dropped.
 *
 * Deliberately absent: payloads (the store has them), ordering across lanes, exactly-once.
 */
export interface Bus {
  readonly kind: string;
  /**
   * True when the bus's queue is the store itself (claims take due rows straight from it): nothing
   * can be lost between them, so the reconciler has nothing to re-announce.
   */
  readonly queueIsStore: boolean;
  /** How far ahead of its due time (ms) a published job is held by the bus; Infinity for the store's own queue. */
  readonly horizonMs: number;
  /**
   * True while the bus holds as much as it is bounded to (HERALD_BUS_MAX_LENGTH per lane): ingest
   * refuses new notifications with 503 until it drains. Publishing never drops a job, full or not.
   */
  readonly full: boolean;
  /** Holds `jobs` for takers (those due beyond the horizon are left to the store, see above). */
  publish(jobs: readonly BusJob[]): Promise<void>;
  /**
   * Where to take up to `max` due jobs of `lane` from: ids the bus hands out, or — for a bus whose
   * queue is the store's deliveries table — `{ lane, max }`, so that the store finds and starts them
   * in one statement. An id handed out and not acked within the visibility timeout (its taker died)
   * is handed out again.
   */
  claim(lane: Lane, max: number): Promise<TakeFrom>;
  /** Forget ids that were handled (whatever their outcome: the store holds it). */
  ack(lane: Lane, ids: readonly string[]): Promise<void>;
  /**
   * Jobs of `lane` that are due and not yet handed to any taker (0 for the store's own queue). The
   * reconciler re-announces a lane's overdue rows only when this is 0: while the bus still has due
   * work waiting, the overdue rows are most likely in it.
   */
  waiting(lane: Lane): Promise<number>;
  /** Resolves when work may have arrived in `lane`, or after `timeoutMs`. */
  waitForWork(lane: Lane, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}
