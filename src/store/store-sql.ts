/**
 * The Store port on SQL: one implementation for both adapters (PGlite embedded, PostgreSQL
 * server), which differ only in their driver. Each concern lives in its own file.
 */
import type { Device, DeviceToken } from '../core/devices.ts';
import type {
  AcceptOptions,
  CapKey,
  DecisionContext,
  DeviceRegistration,
  DigestOutcome,
  DigestWork,
  RetentionOptions,
  RetentionReport,
  StartedWork,
  Store,
  StoredTemplate,
  TakeFrom,
} from '../core/ports.ts';
import type { Preferences } from '../core/preferences.ts';
import type { Template } from '../core/template-render.ts';
import type { FanoutJob, FanoutPageRequest, FanoutPageResult } from '../core/topics.ts';
import type {
  AcceptOutcome,
  AttemptOutcome,
  BusJob,
  CategoryPolicy,
  Channel,
  DeadLetter,
  DeliveryState,
  InAppAppended,
  InAppCompletion,
  InboxEntry,
  InboxItem,
  InboxPage,
  Lane,
  NewNotification,
  NotificationView,
  ReadSelection,
  UserProfile,
} from '../core/types.ts';
import { type DataDirLock, lockDataDir } from './data-dir-lock.ts';
import { openPglite, type PgliteOpenOptions } from './db-pglite.ts';
import { DEFAULT_TIMEOUTS, openPostgres, type PostgresTimeouts } from './db-postgres.ts';
import { migrate } from './migrate.ts';
import type { Sql } from './sql.ts';
import { SqlCategoryPolicyStore } from './sql-category-policies.ts';
import { SqlDecisionStore } from './sql-decisions.ts';
import { SqlDeliveryStore } from './sql-deliveries.ts';
import { SqlDeviceStore } from './sql-devices.ts';
import { SqlDigestStore } from './sql-digests.ts';
import { SqlInboxStore } from './sql-inbox.ts';
import { SqlNotificationStore } from './sql-notifications.ts';
import { SqlPreferenceStore } from './sql-preferences.ts';
import { SqlRetention } from './sql-retention.ts';
import { SqlTemplateStore } from './sql-templates.ts';
import { SqlTopicStore } from './sql-topics.ts';
import { SqlUserStore } from './sql-users.ts';

/** Tables whose rows are updated or deleted, the hottest first; then the append-only timeline (statistics). */
const VACUUMED_TABLES = [
  'deliveries',
  'inbox',
  'inbox_counters',
  'notifications',
  'idempotency_keys',
  'users',
  'devices',
  'preferences',
  'topics',
  'topic_subscriptions',
  'fanout_jobs',
  'timeline',
  'digests',
] as const;

const ANALYZE_EVERY_MS = 3_600_000;

export class SqlStore implements Store {
  readonly kind: Store['kind'];
  readonly parallelism: number;
  readonly exclusive: boolean;
  private analyzedAt = 0;
  private readonly notifications: SqlNotificationStore;
  private readonly deliveries: SqlDeliveryStore;
  private readonly users: SqlUserStore;
  private readonly inbox: SqlInboxStore;
  private readonly policies: SqlCategoryPolicyStore;
  private readonly templates: SqlTemplateStore;
  private readonly devices: SqlDeviceStore;
  private readonly preferences: SqlPreferenceStore;
  private readonly retention: SqlRetention;
  private readonly topics: SqlTopicStore;
  private readonly digests: SqlDigestStore;
  private readonly decisions: SqlDecisionStore;

  constructor(
    readonly sql: Sql,
    private readonly lock?: DataDirLock,
  ) {
    this.kind = sql.kind;
    this.parallelism = sql.parallelism;
    this.exclusive = lock !== undefined;
    this.notifications = new SqlNotificationStore(sql);
    this.deliveries = new SqlDeliveryStore(sql);
    this.users = new SqlUserStore(sql);
    this.inbox = new SqlInboxStore(sql);
    this.templates = new SqlTemplateStore(sql);
    this.devices = new SqlDeviceStore(sql);
    this.preferences = new SqlPreferenceStore(sql);
    this.retention = new SqlRetention(sql);
    this.topics = new SqlTopicStore(sql);
    this.policies = new SqlCategoryPolicyStore(sql);
    this.digests = new SqlDigestStore(sql);
    this.decisions = new SqlDecisionStore(sql);
  }

  async accept(batch: readonly NewNotification[], options?: AcceptOptions): Promise<AcceptOutcome[]> {
    const out = await this.notifications.accept(batch, options);
    // A topic notification may have left an item to read through its subscriptions.
    if (batch.some((n) => n.topic)) this.topics.topicItemAccepted();
    return out;
  }
  getNotification(
    id: string,
    options?: { cursor?: string | null; limit?: number; timelineCursor?: string | null },
  ): Promise<NotificationView | null> {
    return this.notifications.getNotification(id, options);
  }
  cancel(id: string): Promise<'cancelled' | 'not_found' | 'not_cancellable'> {
    return this.notifications.cancel(id);
  }
  purgeIdempotencyKeys(olderThan: Date): Promise<number> {
    return this.notifications.purgeIdempotencyKeys(olderThan);
  }
  startAttempts(from: TakeFrom, leaseMs: number): Promise<StartedWork> {
    return this.deliveries.startAttempts(from, leaseMs);
  }
  finishAttempts(outcomes: readonly AttemptOutcome[]): Promise<boolean[]> {
    return this.deliveries.finishAttempts(outcomes);
  }
  completeInApp(completions: readonly InAppCompletion[]): Promise<(InAppAppended | null)[]> {
    return this.deliveries.completeInApp(completions);
  }
  reclaimExpired(limit: number, options?: { unexpired?: boolean }): Promise<{ id: string; lane: Lane }[]> {
    return this.deliveries.reclaimExpired(limit, options);
  }
  findOverdue(
    dueBefore: Date,
    limit: number,
    options?: { lane?: Lane; dueAfter?: Date },
  ): Promise<{ id: string; lane: Lane; runAt: Date }[]> {
    return this.deliveries.findOverdue(dueBefore, limit, options);
  }
  stillPending(ids: readonly string[]): Promise<BusJob[]> {
    return this.deliveries.stillPending(ids);
  }
  listDeadLetters(options: {
    limit: number;
    cursor?: string | null;
  }): Promise<{ items: DeadLetter[]; nextCursor: string | null }> {
    return this.deliveries.listDeadLetters(options);
  }
  replay(id: string): Promise<{ result: 'replayed'; lane: Lane } | { result: 'not_found' | 'not_replayable' }> {
    return this.deliveries.replay(id);
  }
  siblingInAppState(delivery: { id: string; notificationId: string; userId: string }): Promise<DeliveryState | null> {
    return this.deliveries.siblingInAppState(delivery);
  }
  subscribe(topic: string, userIds: readonly string[]): Promise<number> {
    return this.topics.subscribe(topic, userIds);
  }
  unsubscribe(topic: string, userIds: readonly string[]): Promise<number> {
    return this.topics.unsubscribe(topic, userIds);
  }
  listSubscribers(
    topic: string,
    options: { limit: number; cursor?: string | null },
  ): Promise<{ items: string[]; nextCursor: string | null }> {
    return this.topics.listSubscribers(topic, options);
  }
  countSubscribers(topic: string): Promise<number> {
    return this.topics.countSubscribers(topic);
  }
  claimFanout(leaseMs: number, options?: { unexpired?: boolean }): Promise<FanoutJob | null> {
    return this.topics.claimFanout(leaseMs, options);
  }
  fanoutPage(job: FanoutJob, page: FanoutPageRequest): Promise<FanoutPageResult | null> {
    return this.topics.fanoutPage(job, page);
  }
  fanoutAudience(job: FanoutJob, after: string | null, limit: number): Promise<string[]> {
    return this.topics.fanoutAudience(job, after, limit);
  }
  purgeTopics(olderThan: Date): Promise<{ tombstones: number; jobs: number; items: number }> {
    return this.topics.purgeTopics(olderThan);
  }
  materializeTopics(userIds: readonly string[]): Promise<InboxEntry[]> {
    return this.topics.materializeTopics(userIds);
  }
  topicItemAccepted(): void {
    this.topics.topicItemAccepted();
  }
  /** Where entries appended by fan-out on read go (to the gateway), whichever read appended them. */
  get onTopicEntries(): ((entries: InboxEntry[]) => void) | null {
    return this.topics.onTopicEntries;
  }
  set onTopicEntries(fn: ((entries: InboxEntry[]) => void) | null) {
    this.topics.onTopicEntries = fn;
  }
  upsertUser(profile: UserProfile): Promise<UserProfile> {
    return this.users.upsertUser(profile);
  }
  getUser(id: string): Promise<UserProfile | null> {
    return this.users.getUser(id);
  }
  // Inbox reads first bring in the user's fan-out-on-read topic items (TopicStore.materializeTopics):
  // the listing, the unread count, the last seq and replay then include them as ordinary entries.
  async listInbox(
    userId: string,
    options: { limit: number; before?: number | null; unread?: boolean },
  ): Promise<InboxPage> {
    await this.topics.materializeTopics([userId]);
    return this.inbox.listInbox(userId, options);
  }
  async markRead(userId: string, selection: ReadSelection): Promise<number> {
    await this.topics.materializeTopics([userId]);
    return this.inbox.markRead(userId, selection);
  }
  async inboxState(userId: string): Promise<{ lastSeq: number; unreadCount: number }> {
    await this.topics.materializeTopics([userId]);
    return this.inbox.inboxState(userId);
  }
  async listInboxAfter(userId: string, afterSeq: number, limit: number): Promise<InboxItem[]> {
    await this.topics.materializeTopics([userId]);
    return this.inbox.listInboxAfter(userId, afterSeq, limit);
  }
  markDelivered(acks: readonly { userId: string; seq: number }[]): Promise<void> {
    return this.inbox.markDelivered(acks);
  }
  putTemplate(category: string, template: Template): Promise<StoredTemplate> {
    return this.templates.putTemplate(category, template);
  }
  getTemplate(category: string): Promise<StoredTemplate | null> {
    return this.templates.getTemplate(category);
  }
  deleteTemplate(category: string): Promise<boolean> {
    return this.templates.deleteTemplate(category);
  }
  registerDevice(userId: string, token: DeviceToken, maxPerUser: number): Promise<DeviceRegistration> {
    return this.devices.registerDevice(userId, token, maxPerUser);
  }
  listDevices(userId: string): Promise<Device[]> {
    return this.devices.listDevices(userId);
  }
  listDevicesOfUsers(userIds: readonly string[]): Promise<Map<string, Device[]>> {
    return this.devices.listDevicesOfUsers(userIds);
  }
  removeDevice(id: string, userId?: string): Promise<boolean> {
    return this.devices.removeDevice(id, userId);
  }
  touchDevices(ids: readonly string[]): Promise<void> {
    return this.devices.touchDevices(ids);
  }
  getPreferences(userId: string): Promise<Preferences | null> {
    return this.preferences.getPreferences(userId);
  }
  getPreferencesOfUsers(userIds: readonly string[]): Promise<Map<string, Preferences>> {
    return this.preferences.getPreferencesOfUsers(userIds);
  }
  putPreferences(userId: string, preferences: Preferences): Promise<Preferences> {
    return this.preferences.putPreferences(userId, preferences);
  }
  optOut(userId: string, category: string, channel: Channel): Promise<void> {
    return this.preferences.optOut(userId, category, channel);
  }
  putCategoryPolicy(policy: Omit<CategoryPolicy, 'updatedAt'>): Promise<CategoryPolicy> {
    return this.policies.putCategoryPolicy(policy);
  }
  getCategoryPolicy(category: string): Promise<CategoryPolicy | null> {
    return this.policies.getCategoryPolicy(category);
  }
  takeDigests(max: number, leaseMs: number, graceMs: number, items: number): Promise<DigestWork[]> {
    return this.digests.takeDigests(max, leaseMs, graceMs, items);
  }
  finishDigest(outcome: DigestOutcome): Promise<{ recorded: boolean; seq: number | null }> {
    return this.digests.finishDigest(outcome);
  }
  reclaimExpiredDigests(limit: number, options?: { unexpired?: boolean }): Promise<number> {
    return this.digests.reclaimExpiredDigests(limit, options);
  }
  deleteCategoryPolicy(category: string): Promise<boolean> {
    return this.policies.deleteCategoryPolicy(category);
  }
  getDecisionContexts(userIds: readonly string[]): Promise<Map<string, DecisionContext>> {
    return this.decisions.getDecisionContexts(userIds);
  }
  hasAnyDecisionContext(): Promise<boolean> {
    return this.decisions.hasAnyDecisionContext();
  }
  getExpiries(notificationIds: readonly string[]): Promise<Map<string, Date | null>> {
    return this.decisions.getExpiries(notificationIds);
  }
  countSend(key: CapKey, max: number): Promise<boolean> {
    return this.decisions.countSend(key, max);
  }
  digestOverflow(
    delivery: { id: string; leaseToken: string },
    window: { windowStart: Date; windowEnd: Date },
  ): Promise<boolean> {
    return this.decisions.digestOverflow(delivery, window);
  }
  async vacuum(): Promise<string[]> {
    if (this.kind !== 'pglite') return [];
    // VACUUM costs what changed since the last one (a minute at 1,000 deliveries/s: ~50 ms);
    // ANALYZE samples whole tables (~100 ms each, changed or not), so it runs once an hour.
    const analyze = Date.now() - this.analyzedAt >= ANALYZE_EVERY_MS;
    // One statement per table, so that other work gets the single connection in between.
    for (const table of VACUUMED_TABLES) await this.sql.query(`VACUUM ${analyze ? '(ANALYZE) ' : ''}${table}`);
    if (analyze) this.analyzedAt = Date.now();
    return [...VACUUMED_TABLES];
  }
  runRetention(options: RetentionOptions): Promise<RetentionReport> {
    return this.retention.run(options);
  }
  async tryLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    // Taken when free or lapsed (on the database's clock), renewed by its holder, else left alone.
    const rows = await this.sql.query(
      `INSERT INTO leases (name, holder, until) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
       ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
       WHERE leases.holder = EXCLUDED.holder OR leases.until < now()
       RETURNING holder`,
      [name, holder, ttlMs],
    );
    return rows.length === 1;
  }
  async releaseLease(name: string, holder: string): Promise<void> {
    await this.sql.query('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
  }
  async ping(): Promise<void> {
    await this.sql.query('SELECT 1');
  }
  async close(): Promise<void> {
    try {
      await this.sql.close();
    } finally {
      this.lock?.release();
    }
  }
}

/**
 * Opens the embedded store: PGlite in `dataDir`, locked for this process (data-dir-lock.ts), or in
 * memory when `dataDir` is null; migrated, with the coming days' partitions made.
 */
export async function openEmbeddedStore(dataDir: string | null, options: PgliteOpenOptions = {}): Promise<SqlStore> {
  const lock = dataDir === null ? undefined : lockDataDir(dataDir);
  try {
    const sql = await openPglite(dataDir ?? undefined, options);
    await migrate(sql)
      .then(() => new SqlRetention(sql).prepare(new Date()))
      .catch(async (e: unknown) => {
        await sql.close();
        throw e;
      });
    return new SqlStore(sql, lock);
  } catch (e) {
    lock?.release();
    throw e;
  }
}

/**
 * Opens the PostgreSQL store, migrates it and makes the coming days' partitions; `timeouts` default
 * to the settings' defaults.
 */
export async function openPostgresStore(
  url: string,
  poolSize: number,
  timeouts: PostgresTimeouts = DEFAULT_TIMEOUTS,
): Promise<SqlStore> {
  const sql = await openPostgres(url, poolSize, timeouts);
  await migrate(sql);
  // The coming days' partitions exist whether or not a scheduler runs (a row of a day without one
  // would go to the DEFAULT partition, which is never dropped whole).
  await new SqlRetention(sql).prepare(new Date());
  return new SqlStore(sql);
}
