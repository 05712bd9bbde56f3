/**
 * Ingest: turns a validated request into committed rows, then announces them on the bus.
 *
 * Promises: the returned outcome is given only after the notification and all its deliveries are
 * committed (group commit: concurrent requests share one transaction; under load a commit waits
 * briefly for more requests rather than running beside another with a handful). Announcing on the bus
 * happens after the commit and may fail without losing anything: the reconciler finds committed
 * rows that are due and re-announces them. When too many requests wait for a commit, new ones are
 * refused with HERALD_ERR_OVERLOADED (429) instead of queueing without bound.
 */
import { createHash } from 'node:crypto';
import type { Decider } from './decider.ts';
import { HeraldError } from './errors.ts';
import type { HeraldEmitter } from './events.ts';
import { GroupCommit, OverloadedError } from './group-commit.ts';
import { uuidv7 } from './ids.ts';
import type { AcceptOptions, NotificationStore } from './ports.ts';
import type { Bus } from './ports-bus.ts';
import type { AcceptOutcome, CategoryPolicy, NewNotification, NotificationRequest } from './types.ts';

/** How long a notification lives when neither it nor its category says: 30 days. */
export const DEFAULT_RETENTION_MS = 30 * 86_400_000;

export interface IngestOptions {
  /** Requests allowed to wait for a commit before 429 (HERALD_INGEST_MAX_PENDING). */
  maxPending: number;
  /** Transactions run at once (the store's parallelism). */
  parallel: number;
  /** Notifications per transaction; default 500. */
  maxBatch?: number;
  /** Deliveries (recipients × channels) per transaction; default 50,000. A larger notification commits alone. */
  maxDeliveries?: number;
  /** While a commit runs, another starts only once this many requests wait (or after 2 ms); default 32. */
  overlapMinBatch?: number;
  /**
   * In-app deliveries of notifications due now with at most this many recipients are delivered in
   * the accepting transaction (NotificationStore.accept's `inAppUpTo`); default 0. Only a process
   * that also delivers (the worker role) should: the entries reach sockets through its events.
   */
  inAppUpTo?: number;
  /**
   * Which categories have a template (TemplateCache): their in-app deliveries are left to a worker,
   * which renders them (AcceptOptions.templated). A cached answer costs no store round trip. Absent:
   * no category is treated as having one.
   */
  templates?: { hasTemplate(category: string): boolean | Promise<boolean> };
  /** Topics above this many subscribers get fan-out on read for in-app (AcceptOptions.fanoutOnReadAbove). */
  fanoutOnReadAbove?: number;
  /**
   * Category policies (a cache of them): a policy's `priority`/`channels` replace the defaults a
   * request did not override, and its `ttl` sets the lifetime of a notification without its own.
   * Absent: no category has a policy.
   */
  policies?: { policyOf(category: string): CategoryPolicy | null | Promise<CategoryPolicy | null> };
  /** Decides per recipient × channel before the commit (ADR 13). Absent: everything is sent now. */
  decider?: Decider;
  /** Lifetime of a notification when neither it nor its category gives a ttl; default DEFAULT_RETENTION_MS. */
  retentionMs?: number;
}

export interface IngestLog {
  warn(obj: object, msg: string): void;
}

export class Ingest {
  private readonly commits: GroupCommit<NewNotification, AcceptOutcome>;
  private readonly acceptOptions: AcceptOptions;
  private readonly templates: IngestOptions['templates'];
  private readonly policies: IngestOptions['policies'];
  /** The decider of this ingest (IngestOptions.decider): fan-out pages decide with the same one. */
  readonly decider: Decider | undefined;
  private readonly retentionMs: number;

  constructor(
    private readonly store: NotificationStore,
    private readonly bus: Bus,
    private readonly events: HeraldEmitter,
    private readonly log: IngestLog,
    options: IngestOptions,
  ) {
    this.acceptOptions = {
      inAppUpTo: options.inAppUpTo ?? 0,
      ...(options.fanoutOnReadAbove !== undefined ? { fanoutOnReadAbove: options.fanoutOnReadAbove } : {}),
    };
    this.templates = options.templates;
    this.policies = options.policies;
    this.decider = options.decider;
    this.retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    this.commits = new GroupCommit((batch) => this.commit(batch), {
      maxBatch: options.maxBatch ?? 500,
      maxPending: options.maxPending,
      parallel: options.parallel,
      overlapMinBatch: options.overlapMinBatch ?? 32,
      weight: (n) => n.to.length * n.channels.length,
      maxWeight: options.maxDeliveries ?? 50_000,
    });
  }

  get pending(): number {
    return this.commits.pending;
  }

  async submit(request: NotificationRequest, idempotencyKey: string | null): Promise<AcceptOutcome> {
    const now = new Date();
    let policy = this.policies?.policyOf(request.category) ?? null;
    // A policy the cache must read first: a store that cannot answer refuses the request (503), as a commit that fails does.
    if (policy instanceof Promise) policy = await policy.catch((e: unknown) => Promise.reject(refusal(e)));
    const n = this.prepare(request, idempotencyKey, now, policy);
    this.refuseWhileBusFull();
    try {
      return await this.commits.submit(n);
    } catch (e) {
      throw refusal(e);
    }
  }

  /**
   * Submits several requests (a batch) as one group: they are committed together, in one
   * transaction — all or none — and answered in order. Refused whole with HERALD_ERR_OVERLOADED
   * when they would not fit among the requests waiting for a commit (nothing stored), and whole
   * with HERALD_ERR_UNAVAILABLE when the commit fails (nothing stored).
   */
  async submitAll(items: readonly { request: NotificationRequest; idempotencyKey: string | null }[]) {
    const now = new Date();
    const ns: NewNotification[] = [];
    for (const { request, idempotencyKey } of items) {
      let policy = this.policies?.policyOf(request.category) ?? null;
      if (policy instanceof Promise) policy = await policy.catch((e: unknown) => Promise.reject(refusal(e)));
      ns.push(this.prepare(request, idempotencyKey, now, policy));
    }
    this.refuseWhileBusFull();
    try {
      return await this.commits.submitAll(ns);
    } catch (e) {
      throw refusal(e);
    }
  }

  /** A bus at its bound (Bus.full) takes nothing new until it drains: the producer retries shortly. */
  private refuseWhileBusFull(): void {
    if (this.bus.full) {
      throw new HeraldError(
        'HERALD_ERR_OVERLOADED',
        'the bus holds as much work as it is bounded to (HERALD_BUS_MAX_LENGTH); retry shortly',
        { retryAfter: 1 },
      );
    }
  }

  /**
   * A request ready to commit: its id (uuidv7 of `now`), its category policy's priority and channels
   * where the request left them to defaults, its expiry, and the hash of its body when it has a key.
   */
  private prepare(
    request: NotificationRequest,
    idempotencyKey: string | null,
    now: Date,
    policy: CategoryPolicy | null,
  ): NewNotification {
    const sendAt = request.sendAt && request.sendAt > now ? request.sendAt : null;
    // Every field written out, in one literal: spreading `request` and then adding fields made V8
    // take a slow path for each added field: 8 → 1.4 µs per submit (scratch loop with a store that answers at once).
    const n: NewNotification = {
      to: request.to,
      topic: request.topic ?? null,
      category: request.category,
      priority:
        policy?.priority && request.defaulted?.includes('priority') === true ? policy.priority : request.priority,
      channels:
        policy?.channels && request.defaulted?.includes('channels') === true ? policy.channels : request.channels,
      steps: request.steps ?? null,
      title: request.title,
      body: request.body,
      data: request.data,
      // A sendAt in the past means now.
      sendAt,
      groupKey: request.groupKey,
      id: uuidv7(now.getTime()),
      createdAt: now,
      idempotencyKey,
      requestHash: idempotencyKey === null ? null : hashRequest(request),
      expiresAt: new Date((sendAt ?? now).getTime() + (request.ttlMs ?? policy?.ttlMs ?? this.retentionMs)),
    };
    if (request.ttl) {
      n.ttl = request.ttl;
      n.ttlMs = request.ttlMs ?? null;
    }
    return n;
  }

  /** The batch's in-app categories that have a template; undefined when none has (the usual case). */
  private async templatedCategories(batch: readonly NewNotification[]): Promise<Set<string> | undefined> {
    if (!this.templates) return undefined;
    let out: Set<string> | undefined;
    for (const n of batch) {
      if (!n.channels.includes('in_app')) continue;
      let has = this.templates.hasTemplate(n.category);
      if (typeof has !== 'boolean') has = await has;
      if (!has) continue;
      out = out ?? new Set();
      out.add(n.category);
    }
    return out;
  }

  /** Waits until every submitted request has been committed or refused. */
  drain(): Promise<void> {
    return this.commits.drain();
  }

  private async commit(batch: NewNotification[]): Promise<AcceptOutcome[]> {
    const started = performance.now();
    const templated = await this.templatedCategories(batch);
    const decisions = this.decider ? await this.decider.decide(batch) : undefined;
    const out = await this.store.accept(
      batch,
      templated || decisions ? { ...this.acceptOptions, templated, decisions } : this.acceptOptions,
    );
    this.events.emit('ingest:commit', { notifications: batch.length, ms: performance.now() - started });
    const accepted = out.flatMap((o) => (o.kind === 'accepted' ? [o] : []));
    for (const o of accepted) {
      const lane = o.jobs[0]?.lane ?? o.delivered[0]?.lane ?? 'normal';
      this.events.emit('notification:accepted', {
        id: o.answer.id,
        lane,
        deliveries: o.jobs.length + o.delivered.length,
        ...(o.answer.recipients === null ? { fanout: true } : {}),
        ...(o.inAppOnRead ? { inAppOnRead: true } : {}),
      });
    }
    this.events.inboxDelivered(accepted.flatMap((o) => o.delivered));
    const jobs = accepted.flatMap((o) => o.jobs);
    if (jobs.length) {
      await this.bus.publish(jobs).catch((error: unknown) => {
        this.log.warn({ err: error, jobs: jobs.length }, 'bus publish failed; the reconciler will announce these');
      });
    }
    return out;
  }
}

/** What a producer is told when its notifications could not be queued or committed (nothing was stored). */
function refusal(e: unknown): HeraldError {
  if (e instanceof OverloadedError) {
    return new HeraldError('HERALD_ERR_OVERLOADED', 'too many notifications waiting to be stored; retry shortly', {
      retryAfter: 1,
    });
  }
  if (e instanceof HeraldError) return e;
  return new HeraldError('HERALD_ERR_UNAVAILABLE', 'the store could not commit the notification; nothing was stored', {
    cause: e,
    retryAfter: 1,
  });
}

/** A stable hash of the request: the same body, whatever its key order, hashes the same. */
export function hashRequest(request: NotificationRequest): string {
  // Without steps (or a ttl, or a topic), hashed as before they existed: a key first used before an
  // upgrade still matches. Which fields were defaulted is not the body's content (`defaulted`), nor is
  // ttlMs (ttl's). A topic is: the same key for another topic is another body.
  const { steps, defaulted: _d, ttlMs: _t, ttl, topic, ...rest } = request;
  const hashed: Record<string, unknown> = rest;
  if (steps) hashed.steps = steps;
  if (ttl) hashed.ttl = ttl;
  if (topic) hashed.topic = topic;
  return createHash('sha256').update(stableStringify(hashed)).digest('base64url');
}

function stableStringify(v: unknown): string {
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableStringify(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
