/**
 * Delivery workers: one claim loop per lane, each with its own reserved concurrency, so a deep
 * bulk lane never takes a slot a critical delivery needs (no head-of-line blocking).
 *
 * A claim asks the bus where to take work from, and the store starts what is taken in one
 * transaction: in-app deliveries are completed there (inbox entry, seq, `sent`: their send is that
 * write), every other delivery is leased (compare-and-set pending → processing). A leased delivery
 * is sent through its channel's provider, its outcome recorded (compare-and-set on the lease
 * token; group-committed with other outcomes), then the bus is acked. A slot is one send in
 * flight, released only after its outcome is committed, so at a crash at most `concurrency` sends
 * of a lane can have happened without being recorded — the only ones that may be repeated (with
 * the same delivery id).
 *
 * While a lane's work is mostly in-app, a claim takes a whole batch: one statement delivers it. The
 * batch adapts so that a take holds the store about `takeBudgetMs` at most (up to `claimBatch`).
 * Otherwise a claim takes one delivery per free slot. Sends beyond the free slots wait in the
 * worker; one whose lease has less than `sendBudgetMs` left is not started (its lease
 * lapses and it is reclaimed), so waiting can delay a delivery but never make it go out twice.
 *
 * In-app deliveries of categories with a template are leased like any other (the store cannot
 * render): the Dispatcher renders them, and their outcome `sent` is recorded by
 * DeliveryStore.completeInApp, which appends the inbox entry in the same commit (group-committed
 * too); the entry reaches the gateway (`inboxDelivered`) after that commit, as for the SQL path.
 *
 * Failures: transient → retry with exponential backoff and jitter; permanent → failed; attempts
 * exhausted → dead (a dead letter). A provider that throws is treated as transient.
 *
 * Destinations (`destinations`): a delivery to a URL its user supplied (webhook, chat) also needs
 * one of its destination's permits (src/core/destination-limit.ts) before it takes a lane slot, and
 * gives it back when its send returns. One that has to wait for a permit holds no slot; it waits in
 * the worker only while a permit is expected back soon (those count against the lane's claims),
 * and is otherwise handed back to the store, `deferred` (pending again, its attempt not counted,
 * due when its destination is expected to take it). Waiting never outlasts the send budget of the
 * lease: a parked delivery that could no longer start in time is deferred instead. So one slow
 * receiver holds at most its permits' worth of a lane's slots, whatever is queued for it.
 */

import { type GroupWindowLookup, groupWindowMs, latestOf } from './aggregation.ts';
import { DestinationLimit, type DestinationResolver, type Moves, type Permit } from './destination-limit.ts';
import type { Dispatch } from './dispatch.ts';
import type { DeliveryEvent, HeraldEmitter } from './events.ts';
import { GroupCommit } from './group-commit.ts';
import type { DeliveryStore } from './ports.ts';
import type { Bus } from './ports-bus.ts';
import type { SendResult } from './ports-channels.ts';
import { afterFailure, type RetryPolicy } from './retry-policy.ts';
import {
  type AttemptOutcome,
  type DeliveryJob,
  type InAppAppended,
  type InAppCompletion,
  type InboxDelivery,
  type InboxItem,
  LANES,
  type Lane,
} from './types.ts';

export interface WorkerOptions {
  laneConcurrency: Record<Lane, number>;
  /** Visibility timeout of a claim (HERALD_LEASE_MS). */
  leaseMs: number;
  /** How long an idle lane waits before claiming again (HERALD_POLL_MS). */
  pollMs: number;
  retry: RetryPolicy;
  /** Most deliveries claimed at once per lane; default 256. */
  claimBatch?: number;
  /**
   * How long one take may hold the store, roughly; default 10 ms. A lane's batch halves when a take
   * runs longer and doubles back (up to `claimBatch`) when full takes run well under it: on the
   * embedded store every other statement — a critical lane's take, an accepting commit — waits for
   * the running one; on PostgreSQL a critical commit waits for the bulk take's WAL to be flushed
   * before its own (25 ms takes: critical p99 during a blast 30–41 ms; 10 ms: 22–28 ms, bulk
   * throughput unchanged).
   */
  takeBudgetMs?: number;
  /** Lease time a single send needs (the longest provider timeout); default half the lease. */
  sendBudgetMs?: number;
  /**
   * Deliveries to URLs their users supplied: at most `max` sends in flight per destination (its
   * origin), as `resolve` names it (HERALD_WEBHOOK_MAX_PER_DESTINATION). Absent: no such limit.
   */
  destinations?: { max: number; resolve: DestinationResolver<DeliveryJob> };
  /** A category's aggregation window (src/core/aggregation.ts); absent: one hour for every category. */
  groupWindow?: GroupWindowLookup;
}

interface Waiting {
  job: DeliveryJob;
  /** When the lease was taken (Date.now()). */
  leasedAt: number;
  /** Its destination (an origin), when it is limited per destination. */
  destination?: string;
  /** Held while it waits for a slot and sends; given back when the send returns. */
  permit?: Permit;
}

export interface WorkerLog {
  error(obj: object, msg: string): void;
}

/**
 * Lease time kept in reserve for recording an outcome. A single send starts only while at least its
 * budget plus this margin is left, so configuration must leave room for both plus a start window.
 */
export function leaseMarginMs(leaseMs: number): number {
  return Math.min(1000, leaseMs / 10);
}

/** A handed-back id whose row another taker held is offered again this much later. */
const HAND_BACK_MS = 1_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class DeliveryWorker {
  private readonly inflight = new Map<Lane, number>(LANES.map((l) => [l, 0]));
  /** Single sends leased but waiting for a slot. */
  private readonly waiting = new Map<Lane, Waiting[]>(LANES.map((l) => [l, []]));
  /**
   * Whether the lane's last take was mostly in-app deliveries (then a claim takes a whole batch).
   * Starts false: a lane's first claim takes one delivery per slot until it has seen in-app work.
   */
  private readonly inAppMostly = new Map<Lane, boolean>(LANES.map((l) => [l, false]));
  /**
   * Whether the lane's last take was mostly deferred (its destinations busy): then a claim takes a
   * whole batch too, so that a backlog for one slow receiver is handed back in a few takes rather
   * than one take per free slot while other receivers' deliveries wait behind it.
   */
  private readonly deferredMostly = new Map<Lane, boolean>(LANES.map((l) => [l, false]));
  private readonly takeBudgetMs: number;
  private readonly slotWaiters = new Map<Lane, (() => void) | null>(LANES.map((l) => [l, null]));
  /** Per-destination permits; null without `destinations`. */
  private readonly destinationLimit: DestinationLimit<Waiting> | null;
  /** Deliveries of each lane parked in destinationLimit (they count against the lane's claims). */
  private readonly parkedIn = new Map<Lane, number>(LANES.map((l) => [l, 0]));
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Deferrals being recorded. */
  private deferring = 0;
  /** Lease time a send needs to start: its budget plus the margin to record its outcome. */
  private readonly startBudgetMs: number;
  private readonly loops: Promise<void>[] = [];
  private readonly outcomes: GroupCommit<AttemptOutcome, boolean>;
  /** Rendered in-app deliveries to complete: inbox entry and `sent` in one commit; each gets its seq. */
  private readonly completions: GroupCommit<InAppCompletion, InAppAppended | null>;
  private stopping = false;
  private wakeOnStop: () => void = () => {};
  /** Settles on stop(), so that an idle lane does not sit out the rest of its poll interval. */
  private readonly stopped = new Promise<void>((r) => {
    this.wakeOnStop = r;
  });

  constructor(
    private readonly store: DeliveryStore,
    private readonly bus: Bus,
    private readonly dispatch: Dispatch,
    private readonly events: HeraldEmitter,
    private readonly log: WorkerLog,
    private readonly options: WorkerOptions,
    storeParallelism = 1,
  ) {
    const total = LANES.reduce((s, l) => s + options.laneConcurrency[l], 0);
    this.takeBudgetMs = options.takeBudgetMs ?? 10;
    this.startBudgetMs = (options.sendBudgetMs ?? options.leaseMs / 2) + leaseMarginMs(options.leaseMs);
    this.destinationLimit = options.destinations ? new DestinationLimit({ max: options.destinations.max }) : null;
    this.outcomes = new GroupCommit((batch) => this.store.finishAttempts(batch), {
      maxBatch: 500,
      // Sends hold slots; deferrals (a whole batch at a time) do not.
      maxPending: total * 2 + LANES.length * (options.claimBatch ?? 256),
      parallel: Math.max(1, Math.min(4, storeParallelism)),
    });
    this.completions = new GroupCommit((batch) => this.store.completeInApp(batch), {
      maxBatch: 500,
      maxPending: total * 2,
      parallel: Math.max(1, Math.min(4, storeParallelism)),
    });
  }

  start(): void {
    for (const lane of LANES) this.loops.push(this.runLane(lane));
    const limit = this.destinationLimit;
    if (limit) {
      this.sweepTimer = setInterval(() => this.apply(limit.sweep()), 100);
      this.sweepTimer.unref();
    }
  }

  /** Stops claiming and waits for every held delivery to be sent and recorded. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeOnStop();
    for (const lane of LANES) this.slotWaiters.get(lane)?.();
    await Promise.all(this.loops);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    // Parked deliveries go back to the store at once rather than wait for a slow destination.
    for (const w of this.destinationLimit?.drain() ?? []) {
      this.parkedIn.set(w.job.lane, (this.parkedIn.get(w.job.lane) ?? 0) - 1);
      this.defer(w, Date.now());
    }
    while (this.deferring > 0 || LANES.some((l) => (this.inflight.get(l) ?? 0) > 0 || this.waitingFor(l).length > 0)) {
      await sleep(10);
    }
    await this.outcomes.drain();
    await this.completions.drain();
  }

  inFlight(lane: Lane): number {
    return this.inflight.get(lane) ?? 0;
  }

  private async runLane(lane: Lane): Promise<void> {
    const limit = this.options.laneConcurrency[lane];
    const maxBatch = this.options.claimBatch ?? 256;
    const minBatch = Math.min(16, maxBatch);
    let batch = maxBatch;
    while (!this.stopping) {
      const free = limit - (this.inflight.get(lane) ?? 0) - (this.parkedIn.get(lane) ?? 0);
      if (free <= 0 || this.waitingFor(lane).length > 0) {
        await new Promise<void>((r) => this.slotWaiters.set(lane, r));
        continue;
      }
      try {
        const wholeBatch = this.inAppMostly.get(lane) || this.deferredMostly.get(lane);
        const from = await this.bus.claim(lane, wholeBatch ? batch : Math.min(free, maxBatch));
        // Before the lease is taken, so the worker never overestimates the lease time left.
        const leasedAt = Date.now();
        const started = performance.now();
        const { jobs, inbox } = await this.store.startAttempts(from, this.options.leaseMs);
        if ('ids' in from) {
          // Leased ids are acked once recorded; the rest now (delivered in-app, or somebody else's).
          const leased = new Set(jobs.map((j) => j.deliveryId));
          const others = from.ids.filter((id) => !leased.has(id));
          if (others.length) await this.handBack(lane, others, inbox);
        }
        if (!jobs.length && !inbox.length) {
          await Promise.race([this.bus.waitForWork(lane, this.options.pollMs), this.stopped]);
          continue;
        }
        this.inAppMostly.set(lane, inbox.length >= jobs.length);
        const took = performance.now() - started;
        const n = jobs.length + inbox.length;
        if (took > this.takeBudgetMs && n > minBatch) batch = Math.max(minBatch, Math.floor(n / 2));
        else if (took < this.takeBudgetMs / 2 && n >= batch) batch = Math.min(maxBatch, batch * 2);
        this.events.inboxDelivered(inbox);
        if (jobs.length) {
          const deferred = await this.admit(lane, jobs, leasedAt);
          this.deferredMostly.set(lane, deferred * 2 > jobs.length);
          this.startWaiting(lane);
        }
      } catch (error) {
        this.events.emit('worker:error', { lane, error });
        this.log.error({ err: error, lane }, 'claim failed; retrying after the poll interval');
        await Promise.race([sleep(this.options.pollMs), this.stopped]);
      }
    }
  }

  /**
   * Acks ids a take did not lease. One the store still has pending was not finished by anybody (its
   * row was locked by another taker at that moment, or it is not due yet): it is published again —
   * due when it is due, a locked one a second from now — before the ack, so the bus never forgets it.
   */
  private async handBack(lane: Lane, ids: readonly string[], delivered: readonly InboxDelivery[]): Promise<void> {
    const done = new Set(delivered.map((d) => d.deliveryId));
    const undecided = done.size ? ids.filter((id) => !done.has(id)) : ids;
    const pending = undecided.length ? await this.store.stillPending(undecided) : [];
    if (pending.length) {
      const soon = Date.now() + HAND_BACK_MS;
      await this.bus.publish(pending.map((j) => (j.runAt.getTime() < soon ? { ...j, runAt: new Date(soon) } : j)));
    }
    await this.bus.ack(lane, ids);
  }

  /**
   * Queues leased deliveries for the lane's slots: at once, or — limited per destination — with
   * their destination's permit, parked until one comes back, or deferred. Returns how many were deferred.
   */
  private async admit(lane: Lane, jobs: DeliveryJob[], leasedAt: number): Promise<number> {
    const queue = this.waitingFor(lane);
    const limit = this.destinationLimit;
    const resolve = this.options.destinations?.resolve;
    if (!limit || !resolve) {
      for (const job of jobs) queue.push({ job, leasedAt });
      return 0;
    }
    let deferred = 0;
    // A destination that cannot be read is not limited: the provider reports the failure itself.
    const resolved = await Promise.all(jobs.map((job) => resolve(job).catch(() => ({ job, destination: null }))));
    for (const { job, destination } of resolved) {
      if (destination === null) {
        queue.push({ job, leasedAt });
        continue;
      }
      const w: Waiting = { job, leasedAt, destination };
      const a = limit.admit(destination, w, leasedAt + this.options.leaseMs - this.startBudgetMs);
      if (a.kind === 'go') queue.push({ ...w, permit: a.permit });
      else if (a.kind === 'parked') this.parkedIn.set(lane, (this.parkedIn.get(lane) ?? 0) + 1);
      else {
        this.defer(w, a.until);
        deferred++;
      }
    }
    return deferred;
  }

  /** Starts waiting sends while the lane has free slots and their leases have time left. */
  private startWaiting(lane: Lane): void {
    const queue = this.waitingFor(lane);
    const limit = this.options.laneConcurrency[lane];
    while (queue.length && (this.inflight.get(lane) ?? 0) < limit) {
      const w = queue.shift() as Waiting;
      // Too little lease left to finish: let it lapse and be reclaimed rather than risk two senders.
      if (Date.now() - w.leasedAt > this.options.leaseMs - this.startBudgetMs) {
        if (w.permit) this.apply((this.destinationLimit as DestinationLimit<Waiting>).release(w.permit, null));
        continue;
      }
      this.take(lane);
      void this.settle(lane, w.job, () => this.sendHolding(w));
    }
  }

  /** Sends; a destination's permit goes back as soon as the send returns, with how long it took. */
  private async sendHolding(w: Waiting): Promise<SendResult> {
    const started = performance.now();
    try {
      return await this.dispatch.send(w.job);
    } finally {
      if (w.permit) {
        this.apply((this.destinationLimit as DestinationLimit<Waiting>).release(w.permit, performance.now() - started));
      }
    }
  }

  /** Parked deliveries that got a permit join their lane's queue; those that will not start in time are deferred. */
  private apply(moves: Moves<Waiting>): void {
    const lanes = new Set<Lane>();
    const left = (lane: Lane) => {
      this.parkedIn.set(lane, (this.parkedIn.get(lane) ?? 0) - 1);
      lanes.add(lane);
    };
    for (const { item, permit } of moves.granted) {
      left(item.job.lane);
      this.waitingFor(item.job.lane).push({ ...item, permit });
    }
    for (const { item, until } of moves.deferred) {
      left(item.job.lane);
      this.defer(item, until);
    }
    for (const lane of lanes) {
      this.startWaiting(lane);
      this.wakeLane(lane);
    }
  }

  /** Hands a delivery back to the store unsent, due at `until` (see DestinationLimit). */
  private defer(w: Waiting, until: number): void {
    const { job } = w;
    const outcome: AttemptOutcome = {
      deliveryId: job.deliveryId,
      leaseToken: job.leaseToken,
      result: 'deferred',
      nextAttemptAt: new Date(until),
      destination: w.destination ?? '',
    };
    this.deferring++;
    void this.record(outcome)
      .then(async (recorded) => {
        await this.bus.ack(job.lane, [job.deliveryId]).catch(() => {});
        if (recorded) this.emitOutcome(job, outcome, new Date());
      })
      .finally(() => {
        this.deferring--;
      });
  }

  /** Wakes the lane's claim loop if it waits for a slot. */
  private wakeLane(lane: Lane): void {
    const wake = this.slotWaiters.get(lane);
    if (wake) {
      this.slotWaiters.set(lane, null);
      wake();
    }
  }

  private take(lane: Lane): void {
    this.inflight.set(lane, (this.inflight.get(lane) ?? 0) + 1);
  }

  private waitingFor(lane: Lane): Waiting[] {
    return this.waiting.get(lane) as Waiting[];
  }

  private async settle(lane: Lane, job: DeliveryJob, send: () => Promise<SendResult>): Promise<void> {
    let result: SendResult;
    try {
      result = await send();
    } catch (e) {
      result = { ok: false, permanent: false, error: `provider error: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (job.channel === 'in_app' && result.ok) {
      const done = await this.complete(job, result);
      await this.released(lane, job);
      // After the commit, like the entries the store completes itself: to the gateway, and `delivery:sent`.
      if (done) this.events.inboxDelivered([done.entry]);
      // An item replaced another: whether that one was unread only the store knew; clients get the count.
      if (done?.unreadCount !== undefined) {
        this.events.emit('inbox:unread', { userId: job.userId, unreadCount: done.unreadCount });
      }
      return;
    }
    const now = new Date();
    const outcome = this.outcomeOf(job, result, now);
    const recorded = await this.record(outcome);
    await this.released(lane, job);
    if (recorded) this.emitOutcome(job, outcome, now);
  }

  /** A held delivery's outcome is committed: ack it and free its slot. */
  private async released(lane: Lane, job: DeliveryJob): Promise<void> {
    await this.bus.ack(lane, [job.deliveryId]).catch(() => {});
    this.inflight.set(lane, (this.inflight.get(lane) ?? 0) - 1);
    this.startWaiting(lane);
    this.wakeLane(lane);
  }

  /**
   * Appends a leased in-app delivery (rendered, or aggregated) to its user's inbox and records it
   * `sent`; null if the lease was lost. With the user's unread count when its item replaced another.
   */
  private async complete(
    job: DeliveryJob,
    result: SendResult & { ok: true },
  ): Promise<{ entry: InboxDelivery; unreadCount?: number } | null> {
    const text = result.inbox ?? { title: null, body: null };
    const detail =
      result.detail && typeof result.detail === 'object' && !Array.isArray(result.detail) ? result.detail : null;
    const completion: InAppCompletion = {
      deliveryId: job.deliveryId,
      leaseToken: job.leaseToken,
      title: text.title,
      body: text.body,
      detail,
    };
    const n = job.notification;
    if (n.groupKey !== null) {
      completion.groupKey = n.groupKey;
      completion.groupWindowMs = await groupWindowMs(n.category, this.options.groupWindow);
    }
    const done = await this.retrying(job.deliveryId, () => this.completions.submit(completion), null);
    if (done === null) return null;
    const item: InboxItem = {
      id: n.id,
      seq: done.seq,
      category: n.category,
      priority: n.priority,
      title: text.title ?? n.title,
      body: text.body ?? n.body,
      data: n.data,
      createdAt: n.createdAt,
      readAt: null,
    };
    const group = done.group;
    if (group) {
      item.count = group.count;
      item.latest = latestOf(item);
      if (group.replaces !== null) item.replaces = group.replaces;
    }
    const entry = { deliveryId: job.deliveryId, userId: job.userId, lane: job.lane, attempt: job.attempt, item };
    if (!group) return { entry };
    if (group.folded) return { entry: { ...entry, folded: true } };
    return group.replaces === null ? { entry } : { entry, unreadCount: group.unreadCount };
  }

  private outcomeOf(job: DeliveryJob, result: SendResult, now: Date): AttemptOutcome {
    const { deliveryId, leaseToken } = job;
    if (result.ok) return { deliveryId, leaseToken, result: 'sent', detail: result.detail ?? null };
    if ('skipped' in result) {
      return {
        deliveryId,
        leaseToken,
        result: 'skipped',
        error: result.skipped,
        reason: result.reason ?? 'no_address',
      };
    }
    const next = afterFailure(this.options.retry, job.attempt, result, now);
    return next.result === 'retry'
      ? { deliveryId, leaseToken, result: 'retry', error: result.error, nextAttemptAt: next.nextAttemptAt }
      : { deliveryId, leaseToken, result: next.result, error: result.error };
  }

  /** Commits an outcome, retrying while the store is unreachable (the lease bounds how long that helps). */
  private record(outcome: AttemptOutcome): Promise<boolean> {
    return this.retrying(outcome.deliveryId, () => this.outcomes.submit(outcome), false);
  }

  /** Runs a commit, retrying while the store is unreachable; `gaveUp` when it never got through. */
  private async retrying<T>(deliveryId: string, commit: () => Promise<T>, gaveUp: T): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await commit();
      } catch (error) {
        if (attempt >= 5) {
          this.log.error({ err: error, deliveryId }, 'could not record outcome; the lease will expire');
          return gaveUp;
        }
        await sleep(100 * 2 ** attempt);
      }
    }
  }

  private emitOutcome(job: DeliveryJob, o: AttemptOutcome, now: Date): void {
    const e: DeliveryEvent = {
      deliveryId: job.deliveryId,
      notificationId: job.notification.id,
      userId: job.userId,
      lane: job.lane,
      channel: job.channel,
      attempt: job.attempt,
      latencyMs: now.getTime() - job.notification.createdAt.getTime(),
      ...(o.result === 'sent' || o.result === 'deferred' ? {} : { error: o.error }),
    };
    const name =
      o.result === 'sent' ? 'delivery:sent' : o.result === 'retry' ? 'delivery:retry' : `delivery:${o.result}`;
    this.events.emit(name as 'delivery:sent', e);
    if (o.result === 'retry' || o.result === 'deferred') {
      // The store holds the retry (pending, due then): a bus that cannot take it now (Redis down)
      // leaves it to the reconciler, which publishes overdue rows again.
      void this.bus.publish([{ id: job.deliveryId, lane: job.lane, runAt: o.nextAttemptAt }]).catch(() => {});
    }
  }
}
