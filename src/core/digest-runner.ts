/**
 * The digest runner (worker role; ADR 13, docs/api.md "Digests"): takes digests whose window has
 * ended, sends each as one message on its channel, and records the digest with all its members.
 *
 * Promises:
 * - Exactly one digest per user × category × channel × window: the store's unique key makes a
 *   second row for a window impossible, and a digest is taken by a compare-and-set lease
 *   (DigestStore.takeDigests), so one runner at a time holds it, whatever the number of processes.
 *   Its outcome is recorded only while that lease still matches, in one commit with its members'
 *   states and timeline events and (in-app) its one inbox entry: an in-app digest reaches the inbox
 *   once. A runner that dies mid-send loses its lease when it expires (Maintenance reclaims it) and
 *   another runner sends the digest again under the same identity (the digest id as Message-ID,
 *   webhook-id, push delivery id): the only repeats a receiver can see, each with the id it saw.
 * - A digest is taken `graceMs` after its window ends, on the database's clock: a notification
 *   accepted by a process whose clock runs a little behind still joins its window's digest rather
 *   than being sent on its own after it.
 * - Sends go through the same dispatch as deliveries (opt-out gate, the category's template with
 *   `digest`, the channel's providers in fallback order). Transient failure → retried with the retry
 *   policy (members stay pending and digested); permanent → failed; attempts exhausted → dead;
 *   nothing to send to (no address, no provider, opted out) → skipped with the reason; the same
 *   state for every member.
 * - At most `concurrency` digests are in flight per runner; a send starts only right after its take,
 *   and `stop()` waits until every held digest is recorded.
 */
import { DIGEST_ITEMS, digestJob } from './digest-text.ts';
import type { Dispatch } from './dispatch.ts';
import type { HeraldEmitter } from './events.ts';
import type { DigestOutcome, DigestStore, DigestWork } from './ports.ts';
import type { SendResult } from './ports-channels.ts';
import { afterFailure, type RetryPolicy } from './retry-policy.ts';
import type { DeliveryJob, InboxDelivery, JsonValue } from './types.ts';

export interface DigestRunnerOptions {
  /** Digests sent at once by this runner. */
  concurrency: number;
  /** Lease of a taken digest (HERALD_LEASE_MS). */
  leaseMs: number;
  /** How long an idle runner waits before looking again (HERALD_POLL_MS, at least). */
  pollMs: number;
  retry: RetryPolicy;
  /** How long after its window's end a digest is taken; default DIGEST_GRACE_MS. */
  graceMs?: number;
}

export interface DigestRunnerLog {
  error(obj: object, msg: string): void;
}

/** Default delay between a window's end and its digest's take (clock skew between processes). */
export const DIGEST_GRACE_MS = 2_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class DigestRunner {
  private inflight = 0;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private readonly held = new Set<Promise<void>>();
  private wake: () => void = () => {};

  constructor(
    private readonly store: DigestStore,
    private readonly dispatch: Dispatch,
    private readonly events: HeraldEmitter,
    private readonly log: DigestRunnerLog,
    private readonly options: DigestRunnerOptions,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops taking digests and waits for every held one to be sent and recorded. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
    await Promise.all([...this.held]);
  }

  /** Takes what is due (up to the free slots) and starts sending it; resolves to how many were taken. */
  async runOnce(): Promise<number> {
    const free = this.options.concurrency - this.inflight;
    if (free <= 0) return 0;
    const taken = await this.store.takeDigests(
      free,
      this.options.leaseMs,
      this.options.graceMs ?? DIGEST_GRACE_MS,
      DIGEST_ITEMS,
    );
    for (const work of taken) {
      this.inflight++;
      const p = this.settle(work).finally(() => {
        this.inflight--;
        this.held.delete(p);
        this.wake();
      });
      this.held.add(p);
    }
    return taken.length;
  }

  /** Resolves when every digest this runner holds is recorded (tests). */
  async idle(): Promise<void> {
    while (this.held.size) await Promise.all([...this.held]);
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let taken = 0;
      try {
        taken = await this.runOnce();
      } catch (error) {
        this.log.error({ err: error }, 'taking digests failed; retrying after the poll interval');
      }
      if (this.stopping) break;
      // Full (or nothing due): wait for a slot or the poll interval, whichever comes first.
      if (taken === 0 || this.inflight >= this.options.concurrency) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, this.options.pollMs);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    }
  }

  private async settle(work: DigestWork): Promise<void> {
    const job = digestJob(work);
    let result: SendResult;
    if (work.count === 0) {
      // Every member was cancelled or expired: nothing to send.
      result = { ok: false, skipped: 'the digest has no members left', reason: 'empty' };
    } else {
      try {
        result = await this.dispatch.send(job);
      } catch (e) {
        result = {
          ok: false,
          permanent: false,
          error: `provider error: ${e instanceof Error ? e.message : String(e)}`,
        };
      }
    }
    const outcome = this.outcomeOf(work, job, result);
    const done = await this.record(outcome);
    if (!done?.recorded) return;
    if (done.seq !== null && outcome.result === 'sent' && outcome.inbox) {
      // To the gateway, and one `delivery:sent` (metrics), like any inbox entry.
      this.events.inboxDelivered([inboxEntry(work, job, outcome.inbox, done.seq)]);
      return;
    }
    // One attempt event per digest attempt (metrics count digests as deliveries of their channel).
    this.events.emit(outcome.result === 'sent' ? 'delivery:sent' : `delivery:${outcome.result}`, {
      deliveryId: work.id,
      notificationId: work.id,
      userId: work.userId,
      lane: job.lane,
      channel: work.channel,
      attempt: work.attempt,
      latencyMs: Date.now() - work.windowEnd.getTime(),
      ...(outcome.result === 'sent' ? {} : { error: outcome.error }),
    });
  }

  private outcomeOf(work: DigestWork, job: DeliveryJob, result: SendResult): DigestOutcome {
    const { id: digestId, leaseToken } = work;
    if (result.ok) {
      const detail = isObject(result.detail) ? result.detail : null;
      const newest = work.items[0];
      const inbox =
        work.channel === 'in_app' && newest
          ? {
              notificationId: newest.id,
              title: result.inbox?.title ?? job.notification.title,
              body: result.inbox?.body ?? job.notification.body,
            }
          : undefined;
      return { digestId, leaseToken, result: 'sent', detail, ...(inbox && { inbox }) };
    }
    if ('skipped' in result) {
      return { digestId, leaseToken, result: 'skipped', error: result.skipped, reason: result.reason ?? 'no_address' };
    }
    const next = afterFailure(this.options.retry, work.attempt, result, new Date());
    return next.result === 'retry'
      ? { digestId, leaseToken, result: 'retry', error: result.error, nextAttemptAt: next.nextAttemptAt }
      : { digestId, leaseToken, result: next.result, error: result.error };
  }

  /** Commits an outcome, retrying while the store is unreachable (the lease bounds how long that helps). */
  private async record(outcome: DigestOutcome): Promise<{ recorded: boolean; seq: number | null } | null> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.finishDigest(outcome);
      } catch (error) {
        if (attempt >= 5) {
          this.log.error(
            { err: error, digestId: outcome.digestId },
            'could not record a digest; its lease will expire',
          );
          return null;
        }
        await sleep(100 * 2 ** attempt);
      }
    }
  }
}

function isObject(v: JsonValue | undefined): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The digest's inbox entry as the gateway pushes it: the newest member's notification, the digest's text. */
function inboxEntry(
  work: DigestWork,
  job: DeliveryJob,
  text: { notificationId: string; title: string | null; body: string | null },
  seq: number,
): InboxDelivery {
  const newest = work.items[0];
  return {
    deliveryId: work.id,
    userId: work.userId,
    lane: job.lane,
    attempt: work.attempt,
    item: {
      id: text.notificationId,
      seq,
      category: work.category,
      priority: newest?.priority ?? job.notification.priority,
      title: text.title,
      body: text.body,
      data: newest?.data ?? null,
      createdAt: newest ? new Date(newest.createdAt) : job.notification.createdAt,
      readAt: null,
    },
  };
}
