/**
 * Domain vocabulary shared by every part of Herald. Plain data only: no I/O, no adapters.
 */

export const LANES = ['critical', 'high', 'normal', 'bulk'] as const;
/** A priority lane. Each lane has its own queue and reserved worker concurrency. */
export type Lane = (typeof LANES)[number];
export type Priority = Lane;

export const CHANNELS = ['in_app', 'email', 'sms', 'push', 'webhook', 'chat'] as const;
export type Channel = (typeof CHANNELS)[number];

/**
 * Delivery states as stored. Transitions (enforced by compare-and-set in the store):
 *
 *   pending ──claim──▶ processing ──▶ sent ──▶ delivered ──▶ read      (delivered/read: in_app only)
 *      ▲                   │  │
 *      └──retry (backoff)──┘  ├──▶ failed     permanent error, not retried
 *      ▲                      └──▶ dead       retries exhausted
 *      └────────replay──────────── failed | dead
 *   pending ──cancel──▶ cancelled   (only while every delivery of the notification is pending)
 *   processing ──lease expired──▶ pending     (the worker that held it is presumed dead)
 *   pending ──take──▶ sent          (in_app: the inbox write is the send, in the same transaction)
 *   processing ──complete──▶ sent   (in_app of a category with a template: leased, rendered by a
 *                                    worker, then the inbox write and `sent` in one commit)
 *   processing ──deferred──▶ pending (not sent: its destination was busy; the attempt is not counted)
 */
export type DeliveryState =
  | 'pending'
  | 'processing'
  | 'sent'
  | 'delivered'
  | 'read'
  | 'failed'
  | 'dead'
  | 'cancelled'
  | 'skipped';

/** States in which nothing more will happen to a delivery unless someone replays it. */
export const TERMINAL_STATES: ReadonlySet<DeliveryState> = new Set([
  'sent',
  'delivered',
  'read',
  'failed',
  'dead',
  'cancelled',
  'skipped',
]);

export type NotificationStatus =
  | 'accepted'
  | 'scheduled'
  | 'processing'
  | 'done'
  | 'partially_failed'
  | 'failed'
  | 'cancelled';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * A `channels` entry given as a step (API.md Part 2): `{"channel": "email", "after": "PT10M",
 * "unless": "read"}` — sent `after` the notification is due, and skipped when the same
 * notification's in-app delivery to that user is by then `read` (or `delivered`).
 */
export interface ChannelStep {
  channel: Channel;
  /** The delay as given (an ISO 8601 duration), or null: none. */
  after: string | null;
  /** `after` in milliseconds (0 when null). */
  afterMs: number;
  unless: StepCondition | null;
}

export type StepCondition = 'read' | 'delivered';

/** What a producer asked for, validated. */
export interface NotificationRequest {
  /** The users named; empty for a topic notification (its audience is expanded later). */
  to: string[];
  /**
   * `to: {"topic": name}`: every subscriber of the topic at acceptance (src/core/fanout.ts). Absent or
   * null: `to` names the recipients.
   */
  topic?: string | null;
  category: string;
  priority: Priority;
  /** Every channel named, in order, whether as a name or as a step. */
  channels: Channel[];
  /**
   * The entries of `channels` given as step objects, in order; null (or absent) when every entry
   * was a plain name. A channel listed here is delivered as its step says.
   */
  steps?: ChannelStep[] | null;
  title: string | null;
  body: string | null;
  data: { [key: string]: JsonValue } | null;
  sendAt: Date | null;
  groupKey: string | null;
  /** The notification's own `ttl` as given (ISO 8601 duration) and in milliseconds; absent or null: none. */
  ttl?: string | null;
  ttlMs?: number | null;
  /**
   * Fields the producer left out and that were given their defaults (`priority` → normal, `channels`
   * → in_app): a category policy's own `priority`/`channels` replace them (API.md Part 2: the
   * notification's own win). Absent: none was defaulted. Not part of the request's hash.
   */
  defaulted?: readonly ('priority' | 'channels')[];
}

/** A request ready to be committed: ids assigned, idempotency key attached. */
export interface NewNotification extends NotificationRequest {
  id: string;
  createdAt: Date;
  idempotencyKey: string | null;
  /** Hash of the request body, to tell a retry (same body) from a conflict (other body). */
  requestHash: string | null;
  /**
   * When the notification stops existing for its recipients: due time + ttl (its own, else its
   * category's, else the default retention). Not delivered after it (`skipped`, `expired`); removed
   * by retention. Absent or null: never (only stores written before issue 13).
   */
  expiresAt?: Date | null;
}

/**
 * A category's policy (PUT /v1/categories/{category}, API.md Part 2), validated. Every field is
 * optional in the request; absent ones have the defaults shown.
 */
export interface CategoryPolicy {
  category: string;
  /** Used when a notification of the category does not give its own; null: the usual default. */
  priority: Priority | null;
  channels: Channel[] | null;
  /** Opt-outs are ignored (a password reset). Default false. */
  required: boolean;
  /** Quiet hours apply to the category's notifications (critical ones always pass). Default true. */
  quietHours: boolean;
  /** Collect each user's notifications over a window or until a cron time in the user's zone. */
  digest: { window: string; windowMs: number } | { cron: string } | null;
  /** Per user, per channel: at most `max` sent per `per`; the overflow is digested or dropped. */
  caps: Partial<Record<Channel, { max: number; per: string; perMs: number; overflow: 'digest' | 'drop' }>>;
  /** How long a notification of the category lives (delivery and retention); null: the default. */
  ttl: string | null;
  ttlMs: number | null;
  updatedAt: Date;
}

/** Why a recipient × channel is not sent now (the delivery's and the timeline's `reason`). */
export type DecisionReason = 'opted_out' | 'capped' | 'expired' | 'quiet_hours' | 'digested';

/**
 * What the decider says about one recipient × channel before anything is written. "Send now" is
 * the absence of a decision.
 * - `skip`: stored `skipped` with the reason; never sent.
 * - `defer`: stored `pending`, due at `until` (the end of the user's quiet hours).
 * - `digest`: stored `pending` with reason `digested`, member of the user's digest for the
 *   category, channel and window starting at `windowStart`; sent inside that digest at `windowEnd`.
 * - `worker`: sent now, but an in-app delivery goes through a worker (as one of a templated
 *   category does) because a send-time gate (ttl, caps) must look at it first.
 */
export type Decision =
  | { kind: 'skip'; reason: 'opted_out' | 'capped' | 'expired' }
  | { kind: 'defer'; reason: 'quiet_hours'; until: Date }
  | { kind: 'digest'; windowStart: Date; windowEnd: Date }
  | { kind: 'worker' };

/** The answer to an accepted POST, stored with the idempotency key and answered again on retries. */
export interface AcceptedAnswer {
  id: string;
  status: 'accepted' | 'scheduled';
  recipients: number | null;
}

/** A unit of work announced on the bus: "delivery `id` of `lane` is due at `runAt`". */
export interface BusJob {
  id: string;
  lane: Lane;
  runAt: Date;
}

/** Inbox entry written by the in_app channel; `seq` grows per user in commit order. */
export interface InboxEntry {
  deliveryId: string;
  userId: string;
  item: InboxItem;
}

/** An in-app delivery the store completed (its inbox entry committed, the delivery `sent`). */
export interface InboxDelivery extends InboxEntry {
  lane: Lane;
  attempt: number;
  /**
   * Aggregated into an item that a newer delivery of the same commit heads: recorded `sent` like the
   * others, but its entry is not pushed (that delivery's carries the item).
   */
  folded?: true;
}

export type AcceptOutcome =
  /**
   * Committed, with the deliveries it created that are still to do (to announce on the bus) and the
   * in-app ones completed in the same transaction (see NotificationStore.accept).
   */
  | {
      kind: 'accepted';
      answer: AcceptedAnswer;
      jobs: BusJob[];
      delivered: InboxDelivery[];
      /** A topic notification whose in-app channel is read through the subscription (fan-out on read). */
      inAppOnRead?: true;
    }
  /** Same idempotency key, same body: the first answer again. */
  | { kind: 'replayed'; answer: AcceptedAnswer }
  /** Same idempotency key, another body. */
  | { kind: 'conflict'; existingId: string };

export interface DeliveryView {
  id: string;
  userId: string;
  channel: Channel;
  status: DeliveryState;
  attempts: number;
  lastError: string | null;
  /** Why a skipped delivery was not sent (a stable code); null otherwise. */
  reason: string | null;
  nextAttemptAt: Date | null;
  updatedAt: Date;
}

export interface TimelineEvent {
  at: Date;
  event: string;
  detail: JsonValue;
}

export interface NotificationView {
  id: string;
  category: string;
  priority: Priority;
  channels: Channel[];
  /** The entries of `channels` given as steps (`after` as given); null when none. */
  steps: { channel: Channel; after: string | null; unless: StepCondition | null }[] | null;
  title: string | null;
  body: string | null;
  data: JsonValue;
  sendAt: Date | null;
  groupKey: string | null;
  createdAt: Date;
  cancelledAt: Date | null;
  recipients: number | null;
  /** Count of deliveries per state, over all deliveries (not just the page). */
  stateCounts: Partial<Record<DeliveryState, number>>;
  /** Deliveries that have had at least one attempt. */
  started: number;
  deliveries: DeliveryView[];
  nextCursor: string | null;
  /** A page of the timeline, oldest first (the first page opens with the events made from the notification). */
  timeline: TimelineEvent[];
  /** Where the next page of the timeline starts; null: this page is the last. */
  nextTimelineCursor: string | null;
}

export interface UserProfile {
  id: string;
  email: string | null;
  phone: string | null;
  timezone: string | null;
  locale: string | null;
  webhookUrl: string | null;
  /** A Slack-compatible incoming-webhook URL: where `chat` deliveries go. */
  chatWebhookUrl: string | null;
}

/**
 * The user as a delivery job carries it: read by the take statement with the job. Contact points
 * that statement does not read are absent (`undefined`, not `null`): the provider that needs one
 * reads the profile itself (the chat provider reads `chatWebhookUrl` by the user's id).
 */
export type JobUser = Omit<UserProfile, 'chatWebhookUrl'> & { chatWebhookUrl?: string | null };

/** One unit of work handed to a channel: a delivery that a worker holds the lease of. */
export interface DeliveryJob {
  deliveryId: string;
  /** Proof of the lease; the outcome is recorded only if it still matches. */
  leaseToken: string;
  attempt: number;
  channel: Channel;
  lane: Lane;
  userId: string;
  notification: {
    id: string;
    category: string;
    priority: Priority;
    title: string | null;
    body: string | null;
    data: JsonValue;
    groupKey: string | null;
    createdAt: Date;
  };
  user: JobUser | null;
  /**
   * A channel step's condition (API.md: `"unless": "read"`): the delivery is skipped when the same
   * notification's in-app delivery to this user is by then read (or delivered). Absent: none.
   */
  unless?: StepCondition;
  /**
   * What the delivery says, rendered for its user and channel from its category's template
   * (ContentRenderer). Absent: the category has no template, and every channel shows the
   * notification's own title and body as it always did.
   */
  content?: DeliveryContent;
  /**
   * Set on a digest's job (src/core/digest-runner.ts): what its template sees as `digest`. The job's
   * `deliveryId` and `notification.id` are then the digest's id. Absent on every other job.
   */
  digest?: DigestVariable;
}

/** One collected notification, as a digest's template sees it (`digest.items[]`). */
export type DigestItem = {
  id: string;
  title: string | null;
  body: string | null;
  data: JsonValue;
  /** ISO 8601. */
  createdAt: string;
  category: string;
  priority: Priority;
};

/** The `digest` template variable: the newest items (at most DIGEST_ITEMS) and the exact count. */
export type DigestVariable = {
  id: string;
  count: number;
  items: DigestItem[];
  /** ISO 8601: the window the digest collected. */
  windowStart: string;
  windowEnd: string;
};

/**
 * A delivery's rendered text: title and body always, and the section of its channel when it has one
 * (`email`, `sms`, `push`, `chat`), each field resolved as API.md's Templates section says.
 */
export interface DeliveryContent {
  title: string | null;
  body: string | null;
  email?: { subject: string | null; html: string | null; text: string | null };
  sms?: { text: string | null };
  push?: { title: string | null; body: string | null };
  chat?: { text: string | null };
  /**
   * The template failed to render (a time or size limit, a filter that threw): the content is then
   * the notification's own title and body, without channel sections, and this names the field and
   * the failure (it goes into the delivery's timeline detail as `templateError`).
   */
  templateError?: string;
}

/**
 * An in-app delivery that a worker leased and rendered: appended to its user's inbox with this text
 * (null: the notification's own) and recorded `sent`, in one commit, if its lease still holds.
 */
export interface InAppCompletion {
  deliveryId: string;
  leaseToken: string;
  title: string | null;
  body: string | null;
  /** Merged into the `sent` timeline event's detail (e.g. `templateError`); null: nothing to add. */
  detail: { [key: string]: JsonValue } | null;
  /** The notification's groupKey: the entry joins the user's open item of that group (src/core/aggregation.ts). */
  groupKey?: string | null;
  /** The group's window when this delivery opens a new item, in milliseconds; default one hour. */
  groupWindowMs?: number;
}

/** Where a completed in-app delivery went: its inbox item's seq and, for a grouped one, the item. */
export interface InAppAppended {
  seq: number;
  /** Grouped deliveries only. */
  group?: {
    /** Notifications the item holds. */
    count: number;
    /** The seq of the item this one replaced; null: it opened a new item. */
    replaces: number | null;
    /** Another delivery of the same call, newer, heads the item: this one's notification is not its latest. */
    folded: boolean;
    /** The user's unread count after the commit. */
    unreadCount: number;
  };
}

export type AttemptOutcome =
  | { deliveryId: string; leaseToken: string; result: 'sent'; detail: JsonValue }
  | { deliveryId: string; leaseToken: string; result: 'retry'; error: string; nextAttemptAt: Date }
  | { deliveryId: string; leaseToken: string; result: 'failed' | 'dead'; error: string }
  /** `reason`: why it was not sent, as a stable code (API.md: `opted_out`, …). */
  | { deliveryId: string; leaseToken: string; result: 'skipped'; error: string; reason: string }
  /**
   * Not sent: its destination (a receiver's origin) had no free send slot, so it goes back to
   * pending until `nextAttemptAt`. Not an attempt: the count goes back down, `lastError` stays.
   */
  | { deliveryId: string; leaseToken: string; result: 'deferred'; nextAttemptAt: Date; destination: string };

export interface InboxItem {
  id: string;
  seq: number;
  category: string;
  priority: Priority;
  title: string | null;
  body: string | null;
  data: JsonValue;
  createdAt: Date;
  readAt: Date | null;
  /**
   * An item aggregating a user's notifications of one groupKey (src/core/aggregation.ts): how many it
   * holds, and the newest one's fields (the item's own fields are that notification's too). Absent on
   * items of notifications without a groupKey.
   */
  count?: number;
  latest?: InboxLatest;
  /** The seq of the item this one replaces: clients drop that one. Absent when it replaced none. */
  replaces?: number;
}

/** The newest notification of an aggregated inbox item. */
export interface InboxLatest {
  id: string;
  category: string;
  priority: Priority;
  title: string | null;
  body: string | null;
  data: JsonValue;
  createdAt: Date;
}

export interface InboxPage {
  items: InboxItem[];
  unreadCount: number;
  nextBefore: number | null;
}

export type ReadSelection = { seqs: number[] } | { upToSeq: number } | { all: true };

export interface DeadLetter {
  id: string;
  notificationId: string;
  userId: string;
  channel: Channel;
  status: 'failed' | 'dead';
  attempts: number;
  lastError: string | null;
  updatedAt: Date;
}
