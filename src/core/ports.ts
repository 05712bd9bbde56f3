/**
 * Ports: the only things the core depends on — the stores here; the bus in ports-bus.ts, real time
 * in ports-realtime.ts, providers and rate limiters in ports-channels.ts. Adapters live in
 * src/store, src/bus, src/realtime, src/channels and src/ratelimit and implement these interfaces;
 * src/wiring.ts picks them once from the configuration.
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

export interface Clock {
  now(): Date;
}
