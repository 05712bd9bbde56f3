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
 */

import type { Dispatch } from './dispatch.ts';
import type { DeliveryEvent, HeraldEmitter } from './events.ts';
import { GroupCommit } from './group-commit.ts';
import type { Bus, DeliveryStore, SendResult } from './ports.ts';
import { afterFailure, type RetryPolicy } from './retry-policy.ts';
import {
  type AttemptOutcome,
  type DeliveryJob,
  type InAppCompletion,
  type InboxDelivery,
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
}

interface Waiting {
  job: DeliveryJob;
  /** When the lease was taken (Date.now()). */
  leasedAt: number;
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
  private readonly takeBudgetMs: number;
  private readonly slotWaiters = new Map<Lane, (() => void) | null>(LANES.map((l) => [l, null]));
  private readonly loops: Promise<void>[] = [];
  private readonly outcomes: GroupCommit<AttemptOutcome, boolean>;
  /** Rendered in-app deliveries to complete: inbox entry and `sent` in one commit; each gets its seq. */
  private readonly completions: GroupCommit<InAppCompletion, number | null>;
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
    this.outcomes = new GroupCommit((batch) => this.store.finishAttempts(batch), {
      maxBatch: 500,
      maxPending: total * 2,
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
  }

  /** Stops claiming and waits for every held delivery to be sent and recorded. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeOnStop();
    for (const lane of LANES) this.slotWaiters.get(lane)?.();
    await Promise.all(this.loops);
    while (LANES.some((l) => (this.inflight.get(l) ?? 0) > 0 || this.waitingFor(l).length > 0)) await sleep(10);
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
      const free = limit - (this.inflight.get(lane) ?? 0);
      if (free <= 0 || this.waitingFor(lane).length > 0) {
        await new Promise<void>((r) => this.slotWaiters.set(lane, r));
        continue;
      }
      try {
        const from = await this.bus.claim(lane, this.inAppMostly.get(lane) ? batch : Math.min(free, maxBatch));
        // Before the lease is taken, so the worker never overestimates the lease time left.
        const leasedAt = Date.now();
        const started = performance.now();
        const { jobs, inbox } = await this.store.startAttempts(from, this.options.leaseMs);
        if ('ids' in from) {
          // Whatever was not leased is finished with: delivered in-app, or somebody else's.
          const leased = new Set(jobs.map((j) => j.deliveryId));
          const others = from.ids.filter((id) => !leased.has(id));
          if (others.length) await this.bus.ack(lane, others);
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
          for (const job of jobs) this.waitingFor(lane).push({ job, leasedAt });
          this.startWaiting(lane);
        }
      } catch (error) {
        this.events.emit('worker:error', { lane, error });
        this.log.error({ err: error, lane }, 'claim failed; retrying after the poll interval');
        await Promise.race([sleep(this.options.pollMs), this.stopped]);
      }
    }
  }

  /** Starts waiting sends while the lane has free slots and their leases have time left. */
  private startWaiting(lane: Lane): void {
    const queue = this.waitingFor(lane);
    const limit = this.options.laneConcurrency[lane];
    // The send itself, plus room to record its outcome before the lease runs out.
    const budget = (this.options.sendBudgetMs ?? this.options.leaseMs / 2) + leaseMarginMs(this.options.leaseMs);
    while (queue.length && (this.inflight.get(lane) ?? 0) < limit) {
      const { job, leasedAt } = queue.shift() as Waiting;
      // Too little lease left to finish: let it lapse and be reclaimed rather than risk two senders.
      if (Date.now() - leasedAt > this.options.leaseMs - budget) continue;
      this.take(lane);
      void this.settle(lane, job, () => this.dispatch.send(job));
    }
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
      const entry = await this.complete(job, result);
      await this.released(lane, job);
      // After the commit, like the entries the store completes itself: to the gateway, and `delivery:sent`.
      if (entry) this.events.inboxDelivered([entry]);
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

  /** Appends a rendered in-app delivery to its user's inbox and records it `sent`; null if the lease was lost. */
  private async complete(job: DeliveryJob, result: SendResult & { ok: true }): Promise<InboxDelivery | null> {
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
    const seq = await this.retrying(job.deliveryId, () => this.completions.submit(completion), null);
    if (seq === null) return null;
    const n = job.notification;
    return {
      deliveryId: job.deliveryId,
      userId: job.userId,
      lane: job.lane,
      attempt: job.attempt,
      item: {
        id: n.id,
        seq,
        category: n.category,
        priority: n.priority,
        title: text.title ?? n.title,
        body: text.body ?? n.body,
        data: n.data,
        createdAt: n.createdAt,
        readAt: null,
      },
    };
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
      ...(o.result === 'sent' ? {} : { error: o.error }),
    };
    const name =
      o.result === 'sent' ? 'delivery:sent' : o.result === 'retry' ? 'delivery:retry' : `delivery:${o.result}`;
    this.events.emit(name as 'delivery:sent', e);
    if (o.result === 'retry') void this.bus.publish([{ id: job.deliveryId, lane: job.lane, runAt: o.nextAttemptAt }]);
  }
}
