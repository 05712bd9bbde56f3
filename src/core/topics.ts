/**
 * Topics: who subscribes to what (API.md Part 2, "Topics and batches"), and the store port that
 * fan-out (src/core/fanout.ts) and fan-out on read work through.
 *
 * Promises of every TopicStore:
 * - subscribe/unsubscribe are idempotent per user and race-safe: `added` counts users who were not
 *   subscribed before this call, `removed` those who were; concurrent calls on one topic never count
 *   a user twice, and the topic's subscriber count (`topicInfo`) always equals its live subscriptions.
 * - The audience of a topic notification is fixed at its acceptance: the users subscribed then (an
 *   unsubscribe leaves a tombstone, so one who unsubscribes after acceptance is still served; one who
 *   subscribes after is not).
 * - A fan-out page commits its deliveries and the job's checkpoint in one transaction, and only while
 *   the caller still holds the job's lease: a crash between pages resumes after the last committed
 *   one, and no subscriber is ever served twice.
 */
import { z } from 'zod';
import type { NotificationDecisions } from './decider.ts';
import { validationError } from './errors.ts';
import { idSchema, issuesOf } from './input.ts';
import type { Channel, InboxEntry, InboxItem, Lane, Priority, StepCondition } from './types.ts';

/** Most user ids in one PUT or DELETE of a topic's subscribers. */
export const MAX_SUBSCRIBERS_PER_CALL = 10_000;

/** `{"userIds": [...]}`: 1 to 10,000 valid user ids (repeats count once). */
export const subscribersBodySchema = z.strictObject({
  userIds: z
    .array(idSchema)
    .min(1, 'must name at least one user')
    .max(MAX_SUBSCRIBERS_PER_CALL, `at most ${MAX_SUBSCRIBERS_PER_CALL} users per call`),
});

/** The body's distinct user ids, or HERALD_ERR_VALIDATION naming the field (`userIds.3`). */
export function parseSubscribers(input: unknown): string[] {
  const r = subscribersBodySchema.safeParse(input);
  if (!r.success) throw validationError(issuesOf(r.error));
  return [...new Set(r.data.userIds)];
}

/** The topic name in a path: the rules of a user id (it travels in URLs the same way). */
export function parseTopicName(name: string): string {
  const r = idSchema.safeParse(name);
  if (!r.success) throw validationError(issuesOf(r.error).map((i) => ({ ...i, field: 'topic' })));
  return r.data;
}

/** A running fan-out job, as the runner that holds its lease sees it. */
export interface FanoutJob {
  notificationId: string;
  topic: string;
  lane: Lane;
  leaseToken: string;
  /** The in-app channel is read through the subscription (fan-out on read): no inbox rows per page. */
  inAppOnRead: boolean;
  /** The checkpoint when the job was claimed: every subscriber up to it (user id order) is served. */
  afterUser: string | null;
  notification: {
    category: string;
    priority: Priority;
    sendAt: Date | null;
    createdAt: Date;
    /** As the accepted notification's (the decider reads them). */
    expiresAt: Date | null;
    ttlMs: number | null;
    channels: Channel[];
    steps: { channel: Channel; afterMs: number; unless: StepCondition | null }[];
    /** When the notification is due (its sendAt, or its acceptance). */
    dueAt: Date;
    /** What its in-app entries show (each with its user's seq), for live frames. */
    item: Omit<InboxItem, 'seq'>;
  };
}

/** One channel of a page's plan: what each subscriber's delivery on it is (see herald_fanout_page). */
export interface FanoutPlanEntry {
  channel: Channel;
  at: Date;
  unless: StepCondition | null;
  /** In-app and due now: completed by the page itself (inbox entry and seq). */
  inline: boolean;
  /** In-app of a category with a template: leased to a worker, which renders it. */
  viaWorker: boolean;
  /** Write a deliveries row even for an inline in-app delivery (a step's `unless` reads it). */
  row: boolean;
}

/** What one page is asked to do (TopicStore.fanoutPage). */
export interface FanoutPageRequest {
  limit: number;
  plan: readonly FanoutPlanEntry[];
  live: readonly string[];
  returnJobs: boolean;
  /** Also extend the job's lease by this much (in the page's transaction). */
  leaseMs?: number;
  /**
   * The page's subscribers as read by `fanoutAudience` after the checkpoint `after`, and the
   * decider's decisions about them (absent: everyone sent now). Absent: the page reads its
   * subscribers itself (no decider). A page whose job's checkpoint is no longer `after` writes nothing.
   */
  decided?: { after: string | null; users: readonly string[]; decisions: NotificationDecisions | undefined };
}

export interface FanoutPageResult {
  /** Subscribers served by this page. */
  recipients: number;
  /** The checkpoint after this page (the last subscriber served so far). */
  checkpoint: string | null;
  /** The job is finished (this was its last page). */
  done: boolean;
  /** The in-app entries of the `live` users, for their sockets. */
  live: InboxEntry[];
  /** Pending deliveries the page created (only when asked: a bus with its own queue needs them). */
  jobs: { id: string; runAt: Date }[];
}

export interface TopicStore {
  subscribe(topic: string, userIds: readonly string[]): Promise<number>;
  unsubscribe(topic: string, userIds: readonly string[]): Promise<number>;
  /** Live subscribers in user id order, after `cursor` (opaque, from a previous page). */
  listSubscribers(
    topic: string,
    options: { limit: number; cursor?: string | null },
  ): Promise<{ items: string[]; nextCursor: string | null }>;
  /** The topic's live subscriber count; 0 for a topic nobody subscribes to (or ever did). */
  countSubscribers(topic: string): Promise<number>;
  /**
   * Takes a running fan-out job whose lease is free or expired, leased for `leaseMs`; null when none.
   * With `unexpired`, a leased one too: only when every lease holder is known to be dead (the
   * embedded store at start-up).
   */
  claimFanout(leaseMs: number, options?: { unexpired?: boolean }): Promise<FanoutJob | null>;
  /**
   * Serves the next `limit` subscribers of the job's audience (one transaction, see the port's
   * header). Null when the lease no longer matches (nothing was written).
   */
  fanoutPage(job: FanoutJob, page: FanoutPageRequest): Promise<FanoutPageResult | null>;
  /** The next `limit` subscribers of the job's audience after `after`, in user id order (no writes). */
  fanoutAudience(job: FanoutJob, after: string | null, limit: number): Promise<string[]>;
  /**
   * Maintenance (for retention; one transaction): deletes what fan-out no longer needs, older than
   * `olderThan` — topic items (fan-out on read) accepted before it (a subscriber who had not read
   * them yet never gets them: they have expired), finished fan-out jobs last updated before it, and
   * tombstones of users who unsubscribed before it, except those a running fan-out job of their topic
   * still reads (unsubscribed after the job's cutoff: that user is in its audience). Subscriber counts,
   * audiences of running jobs and fan-out on read of the remaining items are unchanged. Returns how
   * many rows of each kind were deleted.
   */
  purgeTopics(olderThan: Date): Promise<{ tombstones: number; jobs: number; items: number }>;
  /**
   * Fan-out on read: appends to each user's inbox the topic items of their subscriptions that they
   * have not had yet and were in the audience of (ordinary entries, with the user's next seqs), in one
   * statement; returns the entries appended (none, nearly always).
   */
  materializeTopics(userIds: readonly string[]): Promise<InboxEntry[]>;
  /**
   * Another process accepted a topic item (LiveHandler.topicAccepted): reads materialize from now
   * on, even where this process had found no item yet and would not look again for a while.
   */
  topicItemAccepted(): void;
  /**
   * Told of every entry fan-out on read appends, whichever call appended it (the store's inbox reads
   * materialize first, so that listings, unread counts and replay include the items): the wiring
   * points it at the gateway, so that the user's open sockets get each entry live. Null: nobody.
   */
  onTopicEntries: ((entries: InboxEntry[]) => void) | null;
}
