/**
 * Delivery workers: one claim loop per lane, each with its own reserved concurrency, so a deep
 * bulk lane never takes a slot a critical delivery needs (no head-of-line blocking).
 *
 * For each claimed delivery: take the lease (store compare-and-set pending → processing), send
 * through the channel's provider, record the outcome (compare-and-set on the lease token; group-
 * committed with other outcomes), then ack the bus. A slot is released only after the outcome is
 * committed, so at a crash at most `concurrency` deliveries of a lane can have been sent without
 * being recorded — those are the only ones that may be sent again (with the same delivery id).
 *
 * Failures: transient → retry with exponential backoff and jitter; permanent → failed; attempts
 * exhausted → dead (a dead letter). A provider that throws is treated as transient.
 */
import type { DeliveryEvent, HeraldEmitter } from './events.ts';
import { GroupCommit } from './group-commit.ts';
import { type Bus, type ChannelProvider, type DeliveryStore, isBatchProvider, type SendResult } from './ports.ts';
import { afterFailure, type RetryPolicy } from './retry-policy.ts';
import { type AttemptOutcome, type Channel, type DeliveryJob, LANES, type Lane } from './types.ts';

export interface WorkerOptions {
  laneConcurrency: Record<Lane, number>;
  /** Visibility timeout of a claim (HERALD_LEASE_MS). */
  leaseMs: number;
  /** How long an idle lane waits before claiming again (HERALD_POLL_MS). */
  pollMs: number;
  retry: RetryPolicy;
  /** Most deliveries claimed at once per lane; default 256. */
  claimBatch?: number;
}

export interface WorkerLog {
  error(obj: object, msg: string): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class DeliveryWorker {
  private readonly inflight = new Map<Lane, number>(LANES.map((l) => [l, 0]));
  private readonly slotWaiters = new Map<Lane, (() => void) | null>(LANES.map((l) => [l, null]));
  private readonly loops: Promise<void>[] = [];
  private readonly outcomes: GroupCommit<AttemptOutcome, boolean>;
  private stopping = false;

  constructor(
    private readonly store: DeliveryStore,
    private readonly bus: Bus,
    private readonly providers: ReadonlyMap<Channel, ChannelProvider>,
    private readonly events: HeraldEmitter,
    private readonly log: WorkerLog,
    private readonly options: WorkerOptions,
    storeParallelism = 1,
  ) {
    const total = LANES.reduce((s, l) => s + options.laneConcurrency[l], 0);
    this.outcomes = new GroupCommit((batch) => this.store.finishAttempts(batch), {
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
    for (const lane of LANES) this.slotWaiters.get(lane)?.();
    await Promise.all(this.loops);
    while (LANES.some((l) => (this.inflight.get(l) ?? 0) > 0)) await sleep(10);
    await this.outcomes.drain();
  }

  inFlight(lane: Lane): number {
    return this.inflight.get(lane) ?? 0;
  }

  private async runLane(lane: Lane): Promise<void> {
    const limit = this.options.laneConcurrency[lane];
    const batch = this.options.claimBatch ?? 256;
    while (!this.stopping) {
      const free = limit - (this.inflight.get(lane) ?? 0);
      if (free <= 0) {
        await new Promise<void>((r) => this.slotWaiters.set(lane, r));
        continue;
      }
      try {
        const ids = await this.bus.claim(lane, Math.min(free, batch));
        if (!ids.length) {
          await this.bus.waitForWork(lane, this.options.pollMs);
          continue;
        }
        const jobs = await this.store.startAttempts(ids, this.options.leaseMs);
        const taken = new Set(jobs.map((j) => j.deliveryId));
        const others = ids.filter((id) => !taken.has(id));
        if (others.length) await this.bus.ack(lane, others);
        if (jobs.length) this.dispatch(lane, jobs);
      } catch (error) {
        this.events.emit('worker:error', { lane, error });
        this.log.error({ err: error, lane }, 'claim failed; retrying after the poll interval');
        await sleep(this.options.pollMs);
      }
    }
  }

  /** Starts sending `jobs` (already leased); each holds a slot of `lane` until its outcome is committed. */
  private dispatch(lane: Lane, jobs: DeliveryJob[]): void {
    this.inflight.set(lane, (this.inflight.get(lane) ?? 0) + jobs.length);
    const byChannel = new Map<Channel, DeliveryJob[]>();
    for (const j of jobs) {
      const list = byChannel.get(j.channel);
      if (list) list.push(j);
      else byChannel.set(j.channel, [j]);
    }
    for (const [channel, list] of byChannel) {
      const provider = this.providers.get(channel);
      if (provider && isBatchProvider(provider)) {
        void this.settle(lane, list, () => provider.sendBatch(list));
      } else {
        for (const job of list) void this.settle(lane, [job], async () => [await sendOne(provider, job)]);
      }
    }
  }

  private async settle(lane: Lane, jobs: DeliveryJob[], send: () => Promise<SendResult[]>): Promise<void> {
    let results: SendResult[];
    try {
      results = await send();
    } catch (e) {
      const error = `provider error: ${e instanceof Error ? e.message : String(e)}`;
      results = jobs.map(() => ({ ok: false, permanent: false, error }));
    }
    const now = new Date();
    const outcomes = jobs.map((job, i) => this.outcomeOf(job, results[i], now));
    const recorded = await Promise.all(outcomes.map((o) => this.record(o)));
    await this.bus
      .ack(
        lane,
        jobs.map((j) => j.deliveryId),
      )
      .catch(() => {});
    this.inflight.set(lane, (this.inflight.get(lane) ?? 0) - jobs.length);
    const wake = this.slotWaiters.get(lane);
    if (wake) {
      this.slotWaiters.set(lane, null);
      wake();
    }
    jobs.forEach((job, i) => {
      if (recorded[i]) this.emitOutcome(job, outcomes[i] as AttemptOutcome, now);
    });
  }

  private outcomeOf(job: DeliveryJob, result: SendResult | undefined, now: Date): AttemptOutcome {
    const lease = { deliveryId: job.deliveryId, leaseToken: job.leaseToken };
    if (result?.ok) return { ...lease, result: 'sent', detail: result.detail ?? null };
    const failure = result ?? { ok: false, permanent: false, error: 'provider returned no result' };
    const next = afterFailure(this.options.retry, job.attempt, failure, now);
    return next.result === 'retry'
      ? { ...lease, result: 'retry', error: failure.error, nextAttemptAt: next.nextAttemptAt }
      : { ...lease, result: next.result, error: failure.error };
  }

  /** Commits an outcome, retrying while the store is unreachable (the lease bounds how long that helps). */
  private async record(outcome: AttemptOutcome): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.outcomes.submit(outcome);
      } catch (error) {
        if (attempt >= 5) {
          this.log.error(
            { err: error, deliveryId: outcome.deliveryId },
            'could not record outcome; the lease will expire',
          );
          return false;
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

async function sendOne(provider: ChannelProvider | undefined, job: DeliveryJob): Promise<SendResult> {
  if (!provider) return { ok: false, permanent: true, error: `no provider is configured for channel ${job.channel}` };
  return provider.send(job);
}
