/**
 * The decider's seam (ADR 13): who gets what, when. It runs in the core, per group commit at ingest
 * and per page of a topic's fan-out, before any row is written, so that its decisions are stored
 * with the deliveries in the accepting statement: a delivery is inserted already `skipped`, or
 * `pending` until the end of quiet hours, or in a digest. Send-time checks that cannot be decided
 * up front (ttl after retries, caps) run as gates in the worker.
 *
 * Promises of an implementation: `decide` reads what it needs for the whole batch at once (through
 * caches; never one store round trip per recipient), and returns nothing at all — `undefined` — for
 * a batch in which every recipient × channel is sent now (the fast path then writes exactly what it
 * wrote before the decider existed).
 */
import type { Channel, Decision, NewNotification } from './types.ts';

/** Decisions of one notification, by `decisionKey(userId, channel)`; absent: send now. */
export type NotificationDecisions = ReadonlyMap<string, Decision>;

/** Decisions of a batch, by notification id; absent: every delivery of it is sent now. */
export type Decisions = ReadonlyMap<string, NotificationDecisions>;

export interface Decider {
  decide(batch: readonly NewNotification[]): Promise<Decisions | undefined>;
  /**
   * Whether `decide` might decide anything for `n`, whoever its recipients are: false when nothing of
   * its own (its category's policy, its ttl) decides for a recipient alone and nobody at all has
   * preferences or a time zone (as last known, within the contexts' cache ttl). A fan-out page then
   * needs no list of its subscribers for the decider (ADR 14). At most one cheap store question per
   * cache ttl; never one per recipient.
   */
  mayDecide(n: NewNotification): boolean | Promise<boolean>;
}

export function decisionKey(userId: string, channel: Channel): string {
  return `${channel}\u0000${userId}`;
}
