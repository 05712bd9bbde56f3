/**
 * Fan-out: expands topic notifications into deliveries, one keyset page of subscribers per
 * transaction (TopicStore.fanoutPage), in the background of a worker process.
 *
 * A fan-out job is not a delivery on the bus. A delivery is one small unit, all or nothing, that any
 * worker may take and that the bus may hand out twice (the store's compare-and-set decides). A job is
 * one long piece of work with progress: it lives in the store (`fanout_jobs`, inserted in the
 * transaction that accepts its notification), is held by one runner at a time through a lease that
 * each page extends while the runner works, and advances by pages whose deliveries and checkpoint commit
 * together — so a runner that dies loses at most the page it had not committed, and the next one
 * resumes after the last committed page; nobody is served twice. The bus only carries the deliveries
 * the pages create.
 *
 * Capacity: expansion is bulk work. Each process runs one job at a time, page after page, and pages
 * are sized by time (like the bulk lane's takes): a page that held the store longer than
 * `pageBudgetMs` halves the next, one well under it doubles it (up to `maxPage`). Between pages the
 * runner yields, and while `busy()` says critical or high work is in flight it waits for it (up to
 * `pageBudgetMs`), so a million-subscriber blast never holds the store for more than one short page
 * ahead of a password reset.
 *
 * In-app: entries due now are written by the page itself (inbox entry, seq); those of users with a
 * socket on this process (`liveUsers`) — or, in the distributed mode, on any gateway (`liveAmong`,
 * asked about the page's subscribers) — come back and go to the gateways (`inbox:entries`). A topic
 * above the fan-out-on-read size has its in-app channel read through the subscription instead
 * (TopicStore.materializeTopics): the pages then write only the other channels.
 */
import type { Decider, NotificationDecisions } from './decider.ts';
import type { HeraldEmitter } from './events.ts';
import type { Bus } from './ports-bus.ts';
import type { FanoutJob, FanoutPageRequest, FanoutPlanEntry, TopicStore } from './topics.ts';
import type { BusJob, NewNotification } from './types.ts';

export interface FanoutOptions {
  /** Lease of a job (HERALD_LEASE_MS); every page extends it by as much, in its transaction. */
  leaseMs: number;
  /** How long an idle runner waits before looking for a job again (HERALD_POLL_MS). */
  pollMs: number;
  /** Most subscribers per page; default 10,000 (HERALD_FANOUT_PAGE). */
  maxPage?: number;
  /** Roughly how long one page may hold the store; default 50 ms. */
  pageBudgetMs?: number;
  /** Which categories have a template: their in-app deliveries go to a worker, which renders them. */
  templates?: { hasTemplate(category: string): boolean | Promise<boolean> };
  /** Users with a socket on this process: their new entries are pushed to it. Default: nobody. */
  liveUsers?: () => readonly string[];
  /**
   * Which of a page's subscribers have a socket anywhere (presence, in the distributed mode, where
   * sockets are on other processes): given, each page reads its subscribers first and returns the
   * entries of these, which LiveFrames routes to their gateways. Replaces `liveUsers`.
   */
  liveAmong?: (users: readonly string[]) => Promise<readonly string[]>;
  /** True while critical or high work is in flight: the next page waits for it. Default: never. */
  busy?: () => boolean;
  /** Every lease found at start-up was held by a dead process (the embedded store): take them at once. */
  exclusive?: boolean;
  /**
   * The decider of ingest (ADR 13), run once per page on the page's subscribers; its decisions are
   * stored by the page, in its transaction. Absent, or while it says it would decide nothing
   * (`mayDecide`): everyone is sent now (the page reads its subscribers itself: one statement per page).
   */
  decider?: Decider;
}

export interface FanoutLog {
  error(obj: object, msg: string): void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class FanoutRunner {
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private page: number;
  private readonly maxPage: number;
  private readonly budgetMs: number;
  private firstClaim = true;

  constructor(
    private readonly store: TopicStore,
    private readonly bus: Bus,
    private readonly events: HeraldEmitter,
    private readonly log: FanoutLog,
    private readonly options: FanoutOptions,
  ) {
    this.maxPage = options.maxPage ?? 10_000;
    this.budgetMs = options.pageBudgetMs ?? 50;
    this.page = Math.min(1_000, this.maxPage);
    events.on('notification:accepted', (n) => {
      if (n.fanout) this.wake();
    });
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** A job may be waiting: look now rather than at the next poll. */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stops after the page in progress (the job's lease lapses; a runner resumes it after that page). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let job: FanoutJob | null = null;
      try {
        job = await this.store.claimFanout(this.options.leaseMs, {
          unexpired: this.firstClaim && this.options.exclusive,
        });
        if (!job) this.firstClaim = false;
        if (job) await this.expand(job);
      } catch (error) {
        this.log.error({ err: error, job: job?.notificationId }, 'fan-out failed; retrying after the poll interval');
        await sleep(this.options.pollMs);
        continue;
      }
      if (!job) await this.idle();
    }
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.pollMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }

  /** Runs one job's pages until it is done, its lease is lost, or the runner stops. */
  private async expand(job: FanoutJob): Promise<void> {
    const plan = await this.planOf(job);
    // When the first of the pending deliveries a page creates is due (null: every one is inline).
    const pending = plan.filter((p) => !p.inline).map((p) => p.at.getTime());
    const wakeAt = pending.length ? new Date(Math.min(...pending)) : null;
    let after = job.afterUser;
    while (!this.stopping) {
      await this.giveWay();
      const started = performance.now();
      const request: FanoutPageRequest = {
        limit: this.page,
        plan,
        live: this.options.liveUsers?.() ?? [],
        returnJobs: !this.bus.queueIsStore,
        // The page renews the lease itself: no statement between pages.
        leaseMs: this.options.leaseMs,
      };
      let decisions: NotificationDecisions | undefined;
      // The decider reads the page's subscribers only when it might decide something for them; while
      // nobody has preferences (and the category decides nothing alone) the page reads them itself.
      const decider = this.options.decider;
      const deciding = decider ? await decider.mayDecide(pageNotification(job, [])) : false;
      const liveAmong = this.options.liveAmong;
      if (deciding || liveAmong) {
        const users = await this.store.fanoutAudience(job, after, this.page);
        if (deciding && decider) {
          decisions = (await decider.decide([pageNotification(job, users)]))?.get(job.notificationId);
        }
        request.decided = { after, users, decisions };
        // A presence that cannot answer costs the live push only: the entries are in the store.
        if (liveAmong) request.live = [...(await liveAmong(users).catch(() => []))];
      }
      const result = await this.store.fanoutPage(job, request);
      this.resize(performance.now() - started, result?.recipients ?? 0);
      if (!result) return; // the lease was lost: another runner has the job
      after = result.checkpoint;
      this.events.emit('fanout:page', { notificationId: job.notificationId, recipients: result.recipients });
      if (result.live.length) this.events.emit('inbox:entries', result.live);
      // The store is the queue: one job for the lane only wakes its takers.
      const wake = earliest(wakeAt, decisions && decidedWake(decisions, plan));
      const announced: BusJob[] = !this.bus.queueIsStore
        ? result.jobs.map((j) => ({ id: j.id, lane: job.lane, runAt: j.runAt }))
        : wake && result.recipients > 0
          ? [{ id: job.notificationId, lane: job.lane, runAt: wake }]
          : [];
      if (announced.length) {
        await this.bus.publish(announced).catch((error: unknown) => {
          this.log.error({ err: error }, 'bus publish failed; the reconciler will announce these');
        });
      }
      if (result.done) return;
    }
  }

  /** Waits while critical or high work is in flight (at most one page budget), and yields either way. */
  private async giveWay(): Promise<void> {
    const until = performance.now() + this.budgetMs;
    while (this.options.busy?.() && performance.now() < until) await sleep(1);
    await new Promise<void>((r) => setImmediate(r));
  }

  /** The next page's size: halved after a page over budget, doubled after one well under it. */
  private resize(ms: number, recipients: number): void {
    if (ms > this.budgetMs) this.page = Math.max(Math.min(100, this.maxPage), Math.floor(this.page / 2));
    else if (ms < this.budgetMs / 2 && recipients >= this.page) this.page = Math.min(this.maxPage, this.page * 2);
  }

  /** Each channel's delivery for every subscriber of the job (the same for all of them). */
  private async planOf(job: FanoutJob): Promise<FanoutPlanEntry[]> {
    const n = job.notification;
    let templated = false;
    if (n.channels.includes('in_app') && this.options.templates) {
      templated = await this.options.templates.hasTemplate(n.category);
    }
    const anyUnless = n.steps.some((st) => st.unless !== null);
    const plan: FanoutPlanEntry[] = [];
    for (const channel of n.channels) {
      if (channel === 'in_app' && job.inAppOnRead) continue;
      const step = n.steps.find((st) => st.channel === channel);
      const at = step?.afterMs ? new Date(n.dueAt.getTime() + step.afterMs) : n.dueAt;
      const inline = channel === 'in_app' && !templated && !step?.afterMs && at.getTime() <= Date.now();
      plan.push({
        channel,
        at,
        unless: step?.unless ?? null,
        inline,
        viaWorker: channel === 'in_app' && templated,
        row: inline && anyUnless,
      });
    }
    return plan;
  }
}

/** The page as one notification to the decider: the job's notification, to the page's subscribers. */
export function pageNotification(job: FanoutJob, users: readonly string[]): NewNotification {
  const n = job.notification;
  return {
    id: job.notificationId,
    to: [...users],
    topic: job.topic,
    category: n.category,
    priority: n.priority,
    channels: n.channels,
    steps: n.steps.length
      ? n.steps.map((st) => ({ channel: st.channel, after: null, afterMs: st.afterMs, unless: st.unless }))
      : null,
    title: n.item.title,
    body: n.item.body,
    data: n.item.data as NewNotification['data'],
    sendAt: n.sendAt,
    groupKey: null,
    ttl: null,
    ttlMs: n.ttlMs,
    createdAt: n.createdAt,
    expiresAt: n.expiresAt,
    idempotencyKey: null,
    requestHash: null,
  };
}

/** When the first delivery the decisions leave pending is due: the end of quiet hours, or now (a worker's). */
function decidedWake(decisions: NotificationDecisions, plan: readonly FanoutPlanEntry[]): Date | null {
  let at: number | null = null;
  const inApp = plan.find((p) => p.channel === 'in_app');
  for (const d of decisions.values()) {
    const t = d.kind === 'defer' ? d.until.getTime() : d.kind === 'worker' && inApp ? inApp.at.getTime() : null;
    if (t !== null && (at === null || t < at)) at = t;
  }
  return at === null ? null : new Date(at);
}

function earliest(a: Date | null, b: Date | null | undefined): Date | null {
  if (!b) return a;
  return !a || b < a ? b : a;
}
