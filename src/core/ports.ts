/**
 * Ports: the only things the core depends on. Adapters live in src/store, src/bus, src/channels
 * and implement these interfaces; src/wiring.ts picks them once from the configuration.
 */

import type { Decisions } from './decider.ts';
import type { Device, DeviceToken } from './devices.ts';
import type { Preferences } from './preferences.ts';
import type { Template } from './template-render.ts';
import type { TopicStore } from './topics.ts';
import type {
  AcceptOutcome,
  AttemptOutcome,
  BusJob,
  CategoryPolicy,
  Channel,
  DeadLetter,
  DeliveryJob,
  DeliveryState,
  DigestItem,
  InAppAppended,
  InAppCompletion,
  InboxDelivery,
  InboxItem,
  InboxPage,
  JobUser,
  JsonValue,
  Lane,
  NewNotification,
  NotificationView,
  ReadSelection,
  UserProfile,
} from './types.ts';

export interface AcceptOptions {
  /**
   * In the accepting transaction, also complete the in-app deliveries of every notification that is
   * due now and has at most this many recipients, exactly as DeliveryStore.startAttempts would (inbox
   * entry, seq, `sent`). Default 0: none; every delivery is left pending for the workers.
   */
  inAppUpTo?: number;
  /**
   * Categories that have a template: their in-app deliveries are never completed in SQL (inline or by
   * the take) but leased to a worker (`via_worker`), which renders them and completes them with
   * DeliveryStore.completeInApp. Absent or empty: none. (In-app deliveries of notifications with a
   * groupKey are leased to a worker too, whatever their category: it aggregates them.)
   */
  templated?: ReadonlySet<string>;
  /**
   * Topic notifications (`to: {"topic"}`) to topics with more subscribers than this have their in-app
   * channel read through the subscription (fan-out on read, HERALD_FANOUT_ON_READ_ABOVE). Default:
   * never (fan-out on write).
   */
  fanoutOnReadAbove?: number;
  /** The decider's decisions for this batch (src/core/decider.ts); absent: every delivery is sent now. */
  decisions?: Decisions;
}

/**
 * Notifications and their deliveries: the source of truth.
 *
 * Promises: `accept` commits every notification of the batch, with one delivery per recipient ×
 * channel, in one transaction before it resolves (group commit); an idempotency key is claimed in
 * the same transaction, so two requests with one key never both create a notification, even across
 * processes.
 */
export interface NotificationStore {
  accept(batch: readonly NewNotification[], options?: AcceptOptions): Promise<AcceptOutcome[]>;
  /** `cursor` pages the deliveries, `timelineCursor` the timeline (1,000 events a page), independently. */
  getNotification(
    id: string,
    options?: { cursor?: string | null; limit?: number; timelineCursor?: string | null },
  ): Promise<NotificationView | null>;
  /** Cancels only while every delivery is still pending; atomically with respect to workers. */
  cancel(id: string): Promise<'cancelled' | 'not_found' | 'not_cancellable'>;
  /** Deletes idempotency keys older than `olderThan`; returns how many. */
  purgeIdempotencyKeys(olderThan: Date): Promise<number>;
}

/**
 * The delivery state machine (see DeliveryState in types.ts). Every transition is a
 * compare-and-set and writes a timeline event in the same transaction.
 */
export interface DeliveryStore {
  /**
   * Takes due work and starts it, in one transaction. `from` is what the bus's claim said: the ids
   * it handed out, or (when the bus is the store's own queue) a lane and how many to take, oldest
   * due first, skipping rows another taker holds.
   *
   * Every delivery taken goes pending (due) → processing with a fresh lease token valid for
   * `leaseMs` (`jobs`), except in-app ones: their send *is* a store write, so they are completed in
   * the same transaction (inbox entry with the user's next seq, state `sent`, timeline) and come
   * back as `inbox` — no lease, no second commit, and no way to be sent twice. Ids that are not
   * pending and due are left out: somebody else has them.
   */
  startAttempts(from: TakeFrom, leaseMs: number): Promise<StartedWork>;
  /** Records outcomes; an outcome whose lease token no longer matches is ignored (returns false at its index). */
  finishAttempts(outcomes: readonly AttemptOutcome[]): Promise<boolean[]>;
  /**
   * Completes leased in-app deliveries (those of categories with a template, rendered by a worker): in
   * one commit, each whose lease token still matches goes processing → `sent` and is appended to its
   * user's inbox with its own text and the user's next seq (with its `sent` timeline event). Returns
   * each one's seq, or null where the lease no longer matched (nothing was written for it). A
   * delivery reaches the inbox once: only the commit that moves it out of `processing` appends it.
   * A completion with a `groupKey` joins its user's open item of that group, or opens one (see
   * src/core/aggregation.ts): the item gets a new seq, replacing the old one, atomically with it;
   * a user's completions of one group in one call make one item.
   */
  completeInApp(completions: readonly InAppCompletion[]): Promise<(InAppAppended | null)[]>;
  /**
   * processing with an expired lease → pending. Returns what became claimable again. With
   * `unexpired`, every lease, expired or not: only for leases whose holders are known to be dead.
   */
  reclaimExpired(limit: number, options?: { unexpired?: boolean }): Promise<{ id: string; lane: Lane }[]>;
  /**
   * Pending deliveries due before `dueBefore`, oldest due first (for re-announcing to a bus that may
   * have lost them, or announcing work as it comes within the bus's horizon). `lane`: only that
   * lane's; `dueAfter`: only those due after it.
   */
  findOverdue(
    dueBefore: Date,
    limit: number,
    options?: { lane?: Lane; dueAfter?: Date },
  ): Promise<{ id: string; lane: Lane; runAt: Date }[]>;
  /**
   * Of `ids`, those still pending, with when they are due: what a take left out although nobody
   * finished it (another taker held its row at that moment, or it is not due yet). A bus that hands
   * out ids gets these back to hold (Bus.publish), rather than forgetting them.
   */
  stillPending(ids: readonly string[]): Promise<BusJob[]>;
  listDeadLetters(options: { limit: number; cursor?: string | null }): Promise<{
    items: DeadLetter[];
    nextCursor: string | null;
  }>;
  /** failed | dead → pending (attempts reset). */
  replay(id: string): Promise<{ result: 'replayed'; lane: Lane } | { result: 'not_found' | 'not_replayable' }>;
  /**
   * The state of the in-app delivery to the same user in the same notification as `delivery` (what
   * a channel step's `unless` looks at), or null when that notification has none for that user. One
   * indexed read, however many recipients the notification has.
   */
  siblingInAppState(delivery: { id: string; notificationId: string; userId: string }): Promise<DeliveryState | null>;
}

export interface UserStore {
  upsertUser(profile: UserProfile): Promise<UserProfile>;
  getUser(id: string): Promise<UserProfile | null>;
}

/** A category's template as stored: the definition the producer sent, validated (template-input.ts). */
export interface StoredTemplate extends Template {
  category: string;
  updatedAt: Date;
}

/** Templates per category. A put replaces the category's template whole; nothing here parses Liquid. */
export interface TemplateStore {
  putTemplate(category: string, template: Template): Promise<StoredTemplate>;
  getTemplate(category: string): Promise<StoredTemplate | null>;
  /** Returns false when the category had no template. */
  deleteTemplate(category: string): Promise<boolean>;
}

/** What registering a device did: `created` false when the user already had it (same id). */
export type DeviceRegistration = { result: 'registered'; device: Device; created: boolean } | { result: 'full' };

/**
 * A user's push devices. Registration is idempotent and race-safe: the same token identity (see
 * core/devices.ts) for the same user and provider is one device, however many requests carry it at
 * once; a repeat keeps the id and stores the token given last (a Web Push subscription's keys may be
 * renewed under the same endpoint). A user holds at most `maxPerUser` devices.
 */
export interface DeviceStore {
  registerDevice(userId: string, token: DeviceToken, maxPerUser: number): Promise<DeviceRegistration>;
  /** The user's devices, oldest first. */
  listDevices(userId: string): Promise<Device[]>;
  /** The devices of several users in one read (each user's oldest first); a user without any is absent. */
  listDevicesOfUsers(userIds: readonly string[]): Promise<Map<string, Device[]>>;
  /**
   * Removes a device (unregistered by its user, or reported dead by its provider); with `userId`,
   * only if it is that user's. False when there was no such device.
   */
  removeDevice(id: string, userId?: string): Promise<boolean>;
  /** Records that a push went to these devices now (`lastUsedAt`); unknown ids are ignored. */
  touchDevices(ids: readonly string[]): Promise<void>;
}

/**
 * Users' preferences (src/core/preferences.ts), one record per user. A put replaces the user's
 * preferences whole; `optOut` merges one category × channel opt-out into them in one statement (no
 * read-modify-write: two concurrent unsubscribes both hold, and neither undoes a concurrent put's
 * other keys). Users need no profile to have preferences.
 */
export interface PreferenceStore {
  /** null: the user never set any. */
  getPreferences(userId: string): Promise<Preferences | null>;
  /** Several users' preferences in one read; a user who never set any is absent. */
  getPreferencesOfUsers(userIds: readonly string[]): Promise<Map<string, Preferences>>;
  putPreferences(userId: string, preferences: Preferences): Promise<Preferences>;
  /**
   * Sets `categories[category]` so that `channel` is off: `{channel: false}` when absent, merged into
   * an object, left alone when `false`; a `true` becomes every channel on but this one.
   */
  optOut(userId: string, category: string, channel: Channel): Promise<void>;
}

/** A digest taken by a worker (DigestStore.takeDigests), with its members as the template sees them. */
export interface DigestWork {
  id: string;
  leaseToken: string;
  /** This attempt's number (1 on the first). */
  attempt: number;
  userId: string;
  category: string;
  channel: Channel;
  windowStart: Date;
  windowEnd: Date;
  user: JobUser | null;
  /** Members still pending (the exact number). */
  count: number;
  /** The newest members, newest first, at most the `items` asked for. */
  items: DigestItem[];
}

/** What one attempt at a digest came to; recorded only while its lease token matches. */
export type DigestOutcome = { digestId: string; leaseToken: string } & (
  | {
      result: 'sent';
      /** Merged into each member's `sent` event. */
      detail: { [key: string]: JsonValue } | null;
      /** An in-app digest's inbox entry: its text and the notification it points at. */
      inbox?: { notificationId: string; title: string | null; body: string | null };
    }
  | { result: 'retry'; error: string; nextAttemptAt: Date }
  | { result: 'failed' | 'dead'; error: string }
  | { result: 'skipped'; error: string; reason: string }
);

/**
 * Digests (ADR 13): one row per user × category × channel × window, collected at ingest, sent by a
 * worker after the window ends. Every transition is a compare-and-set on the digest row; a digest
 * and all its members change state in one commit.
 */
export interface DigestStore {
  /**
   * Leases up to `max` digests whose window ended at least `graceMs` ago (on the database's clock)
   * and that are due, pending → processing for `leaseMs`, skipping rows another taker or an
   * accepting statement holds. Members whose notification expired are skipped (`expired`) first.
   * Each digest comes with its exact member count and its newest `items` members.
   */
  takeDigests(max: number, leaseMs: number, graceMs: number, items: number): Promise<DigestWork[]>;
  /**
   * Records an attempt's outcome if the lease still matches: the digest, every pending member (with a
   * timeline event each) and, for a sent in-app digest, its one inbox entry. A retry is due as long
   * after the commit as `nextAttemptAt` is after now, on the database's clock. Returns whether it was
   * recorded, and that entry's seq.
   */
  finishDigest(outcome: DigestOutcome): Promise<{ recorded: boolean; seq: number | null }>;
  /** processing with an expired lease (or any lease, with `unexpired`) → pending; returns how many. */
  reclaimExpiredDigests(limit: number, options?: { unexpired?: boolean }): Promise<number>;
}

/** Category policies (PUT /v1/categories/{category}); a put replaces the category's policy whole. */
export interface CategoryPolicyStore {
  putCategoryPolicy(policy: Omit<CategoryPolicy, 'updatedAt'>): Promise<CategoryPolicy>;
  getCategoryPolicy(category: string): Promise<CategoryPolicy | null>;
  /** false: the category had no policy. */
  deleteCategoryPolicy(category: string): Promise<boolean>;
}

/** What a recipient's decisions depend on: their preferences and time zone (either may be null). */
export interface DecisionContext {
  preferences: Preferences | null;
  timezone: string | null;
}

/** A cap's counter: sends of one category to one user on one channel in one fixed window. */
export interface CapKey {
  userId: string;
  channel: Channel;
  category: string;
  windowStart: Date;
  windowEnd: Date;
}

/** What the decider (src/core/decider-policy.ts) and its send-time gates read and write (ADR 13). */
export interface DecisionStore {
  /**
   * Preferences and time zone of each of `userIds` who has either (preferences LEFT JOIN users), in
   * one statement; a user with neither is absent.
   */
  getDecisionContexts(userIds: readonly string[]): Promise<Map<string, DecisionContext>>;
  /** Whether any user at all has preferences or a time zone (two indexed probes). */
  hasAnyDecisionContext(): Promise<boolean>;
  /** Each notification's `expires_at` (null: none), in one statement; unknown ids are absent. */
  getExpiries(notificationIds: readonly string[]): Promise<Map<string, Date | null>>;
  /**
   * Counts one send against a cap, atomically: true when the window had fewer than `max` (and now has
   * one more), false when it was full (nothing changes). Concurrent workers never exceed `max`.
   */
  countSend(key: CapKey, max: number): Promise<boolean>;
  /**
   * A capped delivery whose category overflows into its digest: if its lease still holds, in one
   * commit it goes processing → `pending` with reason `digested`, member of the user's digest of the
   * window (created if it is the window's first member, as herald_accept does), never due on its own,
   * with its `digested` timeline event. False: the lease was lost, or that digest was already taken
   * (closed) — nothing was written.
   */
  digestOverflow(
    delivery: { id: string; leaseToken: string },
    window: { windowStart: Date; windowEnd: Date },
  ): Promise<boolean>;
}

/** Where a worker takes its next work from: ids a bus handed out, or a lane of the store's own queue. */
export type TakeFrom = { readonly ids: readonly string[] } | { readonly lane: Lane; readonly max: number };

export interface StartedWork {
  /** Leased deliveries to send through their channel's provider. */
  jobs: DeliveryJob[];
  /** In-app deliveries already written to their users' inboxes and recorded `sent`. */
  inbox: InboxDelivery[];
}

export interface InboxStore {
  listInbox(userId: string, options: { limit: number; before?: number | null; unread?: boolean }): Promise<InboxPage>;
  markRead(userId: string, selection: ReadSelection): Promise<number>;
  /** The user's highest seq so far (0 if none) and unread count, for a connecting client. */
  inboxState(userId: string): Promise<{ lastSeq: number; unreadCount: number }>;
  /** Entries with seq > `afterSeq`, oldest first (reconnect replay). */
  listInboxAfter(userId: string, afterSeq: number, limit: number): Promise<InboxItem[]>;
  /** The client received these: their in-app deliveries become `delivered` (if not read already). */
  markDelivered(acks: readonly { userId: string; seq: number }[]): Promise<void>;
}

/**
 * Who is connected, across gateway processes: how many sockets each gateway process (a `node`,
 * named uniquely per process) holds for each user. A gateway reports a socket when it opens — and
 * the promise resolves only once the report is visible to every process, so that a frame routed
 * after it (LiveFrames) finds the socket; the gateway reads the store only after that — and when it
 * closes; once per heartbeat it refreshes everything it holds in one call. A node that stops
 * refreshing (it died) stops counting `ttlMs` after its last refresh (adapter option, at most 60 s).
 */
export interface Presence {
  readonly kind: string;
  /** `node` holds one more socket of `userId`. */
  opened(node: string, userId: string): Promise<void>;
  /** `node` holds one socket fewer of `userId` (the user was seen now). */
  closed(node: string, userId: string): Promise<void>;
  /** `node`'s heartbeat: the sockets it holds now, per user (replaces what it reported before). */
  refresh(node: string, held: ReadonlyMap<string, number>): Promise<void>;
  /**
   * Whether presence still holds `node`'s reports: false once they are gone although the node runs
   * (Redis lost its data, or the node's reports expired while it stalled). Then frames routed by
   * presence missed this node's users meanwhile: the gateway reports everything again at once and its
   * sessions catch up from the store. Cheap: a gateway asks every few seconds.
   */
  knows(node: string): Promise<boolean>;
  /** The nodes whose reports count now (gateways that are alive, holding sockets or not). */
  nodes(): Promise<string[]>;
  /** The live nodes holding sockets of each of `userIds` (a user with none is absent). */
  nodesOf(userIds: readonly string[]): Promise<Map<string, string[]>>;
  /** Across every live node. `lastSeen`: the last open, close or heartbeat of the user (null: never seen). */
  get(userId: string): Promise<{ online: boolean; sockets: number; lastSeen: Date | null }>;
  close(): Promise<void>;
}

/**
 * A frame for one user's sockets, serialized once: a notification (`seq` set: sessions put it in
 * sequence, see src/core/realtime-session.ts) or an unread count (`seq` null).
 */
export interface RoutedFrame {
  userId: string;
  seq: number | null;
  frame: Buffer;
}

/** What a gateway does with the frames routed to its process. */
export interface LiveHandler {
  frames(frames: readonly RoutedFrame[]): void;
  /**
   * Frames may have been missed (the connection to the other processes was lost and is back): every
   * session catches up from the store, which holds every committed seq.
   */
  resync(): void;
  /**
   * A topic notification was accepted (by this process or another): its subscribers with sockets
   * here may have entries to read on (fan-out on read, src/store/sql-topics.ts), which this process's
   * sessions then get live.
   */
  topicAccepted(): void;
}

/**
 * Real-time fan-out between processes: a worker's committed in-app entries and a user's new unread
 * count go to the gateways that hold that user's sockets (through Presence), and to no other — not
 * a broadcast to every node. Best effort by design: the store is the record, and a frame that does
 * not arrive (a gateway restarting, Redis down) is read from the store by the session (at the next
 * frame's gap, at `resync`, or when the client reconnects with `after`). `publish` never throws.
 */
export interface LiveFrames {
  readonly kind: string;
  publish(frames: readonly RoutedFrame[]): Promise<void>;
  /**
   * Tells every live gateway node, this process's included, that a topic notification was accepted
   * (`LiveHandler.topicAccepted`): a topic's subscribers are only known to the store, so this one
   * signal goes to every node, where each reads for the users it holds. Best effort; never throws.
   */
  topicAccepted(): Promise<void>;
  /** Registers this process's gateway as `node`: frames routed to it go to `handler`. */
  subscribe(node: string, handler: LiveHandler): Promise<void>;
  /** Frames this process received from other processes for its sockets (metrics). */
  readonly received: number;
  close(): Promise<void>;
}

/** A retention run's inputs (Store.runRetention). */
export interface RetentionOptions {
  /** A notification whose expires_at is unset leaves this long after it was created (HERALD_RETENTION). */
  defaultRetentionMs: number;
  /** The run's clock (tests); default the current time. */
  now?: Date;
  /** Day partitions made ahead of today. Default 7. */
  daysAhead?: number;
}

/**
 * What a retention run did: day partitions (`pYYYYMMDD`) created and dropped, and the rows it removed
 * (`digests`: finished digests older than the default retention).
 */
export interface RetentionReport {
  partitions: { created: string[]; dropped: string[] };
  removed: {
    notifications: number;
    deliveries: number;
    inboxItems: number;
    timelineEvents: number;
    digests: number;
    /** Cap counters of windows that ended over an hour before the run (nothing reads them again). */
    capWindows: number;
  };
}

export interface Store
  extends NotificationStore,
    DeliveryStore,
    UserStore,
    InboxStore,
    TemplateStore,
    DeviceStore,
    PreferenceStore,
    CategoryPolicyStore,
    TopicStore,
    DigestStore,
    DecisionStore {
  readonly kind: 'pglite' | 'postgres';
  /** How many transactions may usefully run at once (1 for the embedded store). */
  readonly parallelism: number;
  /**
   * No other process can use this store (the embedded one, whose data directory is locked): every
   * lease found at start-up was held by a process that died.
   */
  readonly exclusive: boolean;
  /**
   * Reclaims the space of dead rows (every delivery leaves some) and refreshes the planner's
   * statistics, where the database does not do it itself: the embedded store has no autovacuum.
   * Returns the tables it vacuumed (none on PostgreSQL, whose autovacuum does this).
   */
  vacuum(): Promise<string[]>;
  /**
   * Removes the notifications whose expires_at has passed, with their deliveries, inbox entries and
   * timeline (a whole day at once where every notification of the day has expired), and finished
   * digests older than the default retention; and prepares the coming days. Afterwards no expired entry is in a user's inbox, replay or unread count;
   * a user's seqs keep growing. Safe to run in several processes at once.
   */
  runRetention(options: RetentionOptions): Promise<RetentionReport>;
  /**
   * Takes or renews the lease called `name` for `holder`, for `ttlMs`: true if `holder` holds it now.
   * A periodic task that must run in one process at a time (the reconciler) runs only while its
   * process holds the task's lease; a holder that dies loses it `ttlMs` after its last renewal.
   */
  tryLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up (if `holder` holds it). */
  releaseLease(name: string, holder: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

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

/**
 * What a provider reports for one message. Providers never throw for delivery failures. `skipped`:
 * there was nothing to send to (the user has no address on this channel, or the channel has no
 * provider) — not a failure, so not a dead letter, and the notification can still be `done`.
 */
export type SendResult =
  /** `inbox`: an in-app delivery's text, for the worker to complete it with (DeliveryStore.completeInApp). */
  | { ok: true; detail?: JsonValue; inbox?: { title: string | null; body: string | null } }
  | { ok: false; permanent: boolean; error: string; retryAfterMs?: number }
  /** `reason`: a stable code (`opted_out`, `read`, `no_address`, …); the text says it for people. */
  | { ok: false; skipped: string; reason?: string };

/**
 * Why a permanent failure happened, when a channel can act on it: `token_dead` — the address (a push
 * device token) will never work again, so it is removed and never used again.
 */
export type PermanentReason = 'token_dead';

/** Sends one message on one channel. */
export interface ChannelProvider {
  readonly channel: Channel;
  readonly name: string;
  send(job: DeliveryJob): Promise<SendResult>;
}

/** What a rate limiter decided for one request, with what the `RateLimit-*` headers report. */
export interface RateLimitDecision {
  allowed: boolean;
  /** The bucket's size: requests a key that has been idle may send at once (`RateLimit-Limit`). */
  limit: number;
  /** Whole requests the key may still send right now, after this one (`RateLimit-Remaining`). */
  remaining: number;
  /** Seconds, rounded up, until the bucket is full again (`RateLimit-Reset`); 0 when it is full. */
  resetSeconds: number;
  /** Refused: seconds, rounded up and at least 1, until one request will be served. Allowed: 0. */
  retryAfterSeconds: number;
  /**
   * Refused: milliseconds, not rounded, until one request will be served; allowed: 0. For callers
   * that wait for a token instead of answering 429 (a provider's pace at 200/s waits 5 ms, where a
   * whole second would starve it). Optional so that limiters written before it still implement the
   * port; Herald's adapters always give it, and callers fall back to `retryAfterSeconds`.
   */
  retryAfterMs?: number;
}

/**
 * Admission per key: a token bucket of `burst` tokens refilled at `rps` tokens a second, full at
 * first. Promises: for one key, in any interval of `t` seconds at most `rps × t + burst` takes are
 * allowed — across every process that shares the limiter; a take that is refused consumes nothing,
 * so a client that keeps retrying early does not lock itself out; different keys never share a
 * bucket. Keys are opaque strings chosen by the caller (a digest, never a credential in clear).
 *
 * Deliberately absent: cost per request (every take is one token), queueing (a refused take is
 * answered at once), and per-key limits (one rate and burst for every key).
 */
export interface RateLimiter {
  readonly kind: string;
  /**
   * Takes one token from `key`'s bucket if it has one. `now`: milliseconds on the limiter's own
   * clock (tests); by default the adapter's clock.
   */
  take(key: string, now?: number): Promise<RateLimitDecision>;
  close(): Promise<void>;
}

export interface Clock {
  now(): Date;
}
