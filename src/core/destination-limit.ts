/**
 * Per-destination concurrency: at most `max` sends in flight to one destination (the origin of a
 * user-supplied URL — scheme, host, port), so that one slow receiver cannot hold every send slot of
 * a lane. A keyed semaphore whose wait lists are short on purpose. For each job, `admit` says:
 *
 * - `go`: the job holds one of its destination's permits (give it back with `release` as soon as the
 *   send has returned — before its outcome is recorded);
 * - `parked`: every permit is out, but one is expected to come back within `parkWithinMs` (and
 *   before the job's own deadline); the job waits here, and `release` hands it on with a permit;
 * - `defer`: it would not start in time; the caller gives it back to the store until `until`.
 *
 * Expected waits come from the destination's own send times: the mean of its finished sends
 * (exponentially weighted) and the age of its sends in flight, so a receiver that has just become
 * slow shows it before a single send finishes. A destination none of whose sends has finished yet
 * parks nothing: it may be slow, and parked jobs count against their lane's claims. `sweep` checks parked jobs again
 * with what is known by then: a destination that turns slow gives its parked jobs back within one
 * sweep. A deferred job is given the time its turn is expected to come, counting the jobs parked
 * and those deferred before it that have not come back yet, so the deferred jobs of one
 * destination come back at about the rate it takes them, not all at once. Order among them is not
 * kept: one that comes back too early, and does not fit in the wait list, goes to the back.
 *
 * Promises: never more than `max` permits of one key out at once; every parked job leaves through
 * exactly one of `release` (with a permit), `sweep` (deferred) and `drain`; nothing is dropped.
 * In-process: the bound is per worker process. Knows nothing of leases, stores or lanes.
 */

/** What the worker asks for a job it leased: its destination (null: not limited), and the job to send. */
export type DestinationResolver<J> = (job: J) => Promise<{ job: J; destination: string | null }>;

export interface DestinationLimitOptions {
  /** Permits per destination (HERALD_WEBHOOK_MAX_PER_DESTINATION). */
  max: number;
  /** Longest expected wait a job may spend parked rather than deferred; default 100 ms. */
  parkWithinMs?: number;
  /** Shortest deferral; default 50 ms. */
  minDeferMs?: number;
  /** Longest deferral (a deferred job then comes back and is looked at again); default 60 s. */
  maxDeferMs?: number;
  /** Milliseconds; default Date.now (tests pass their own clock). */
  now?: () => number;
}

/** Proof of a permit: give it back with `release`. */
export interface Permit {
  readonly key: string;
  readonly grantedAt: number;
}

export type Admission = { kind: 'go'; permit: Permit } | { kind: 'parked' } | { kind: 'defer'; until: number };

/** Parked jobs that left: with a permit (send them), or to be deferred until `until`. */
export interface Moves<T> {
  granted: { item: T; permit: Permit }[];
  deferred: { item: T; until: number }[];
}

interface ParkedJob<T> {
  item: T;
  /** The latest time (ms) it may start. */
  deadline: number;
}

interface Destination<T> {
  /** Grant times of the permits out. */
  active: number[];
  /** Weighted mean of finished sends; null until one finished. */
  meanMs: number | null;
  parked: ParkedJob<T>[];
  /** When the jobs deferred so far are to come back, sorted; those in the past are dropped as they pass. */
  deferredUntil: number[];
  lastUsed: number;
}

/** Weight of the newest send in the mean. */
const ALPHA = 0.2;
/** An idle destination's send times are remembered this long. */
const FORGET_AFTER_MS = 10 * 60_000;

export class DestinationLimit<T> {
  private readonly destinations = new Map<string, Destination<T>>();
  /** Keys with parked jobs: what `sweep` looks at. */
  private readonly withParked = new Set<string>();
  private readonly parkWithinMs: number;
  private readonly minDeferMs: number;
  private readonly maxDeferMs: number;
  private readonly now: () => number;
  private lastForget = 0;
  private parkedCount = 0;

  constructor(private readonly options: DestinationLimitOptions) {
    this.parkWithinMs = options.parkWithinMs ?? 100;
    this.minDeferMs = options.minDeferMs ?? 50;
    this.maxDeferMs = options.maxDeferMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  get parked(): number {
    return this.parkedCount;
  }

  /** Permits of `key` out now. */
  inFlight(key: string): number {
    return this.destinations.get(key)?.active.length ?? 0;
  }

  /** `deadline`: the latest time (ms) the job may start. */
  admit(key: string, item: T, deadline: number): Admission {
    const now = this.now();
    const d = this.destination(key, now);
    if (d.active.length < this.options.max && !d.parked.length) return { kind: 'go', permit: this.grant(key, d, now) };
    const ahead = d.parked.length;
    if (this.fits(d, ahead, deadline, now)) {
      d.parked.push({ item, deadline });
      this.withParked.add(key);
      this.parkedCount++;
      return { kind: 'parked' };
    }
    return { kind: 'defer', until: this.deferral(d, ahead, now) };
  }

  /** Gives a permit back; `sentMs`: how long the send took (null when it did not run). */
  release(permit: Permit, sentMs: number | null): Moves<T> {
    const now = this.now();
    const moves: Moves<T> = { granted: [], deferred: [] };
    const d = this.destinations.get(permit.key);
    if (!d) return moves;
    const i = d.active.indexOf(permit.grantedAt);
    if (i >= 0) d.active.splice(i, 1);
    if (sentMs !== null) d.meanMs = d.meanMs === null ? sentMs : d.meanMs + ALPHA * (sentMs - d.meanMs);
    d.lastUsed = now;
    while (d.parked.length && d.active.length < this.options.max) {
      const next = d.parked.shift() as ParkedJob<T>;
      this.parkedCount--;
      if (next.deadline < now) moves.deferred.push({ item: next.item, until: now + this.minDeferMs });
      else moves.granted.push({ item: next.item, permit: this.grant(permit.key, d, now) });
    }
    if (!d.parked.length) this.withParked.delete(permit.key);
    return moves;
  }

  /** Parked jobs no longer expected to start in time leave, to be deferred; call it every ~100 ms. */
  sweep(): Moves<T> {
    const now = this.now();
    const moves: Moves<T> = { granted: [], deferred: [] };
    for (const key of this.withParked) {
      const d = this.destinations.get(key) as Destination<T>;
      const kept: ParkedJob<T>[] = [];
      for (const p of d.parked) {
        if (this.fits(d, kept.length, p.deadline, now)) kept.push(p);
        else moves.deferred.push({ item: p.item, until: this.deferral(d, kept.length, now) });
      }
      this.parkedCount -= d.parked.length - kept.length;
      d.parked = kept;
      if (!kept.length) this.withParked.delete(key);
    }
    if (now - this.lastForget > FORGET_AFTER_MS) this.forget(now);
    return moves;
  }

  /** Every parked job, taken out (the worker is stopping: it gives them back to the store). */
  drain(): T[] {
    const out: T[] = [];
    for (const key of this.withParked) {
      const d = this.destinations.get(key) as Destination<T>;
      for (const p of d.parked) out.push(p.item);
      d.parked = [];
    }
    this.withParked.clear();
    this.parkedCount = 0;
    return out;
  }

  private destination(key: string, now: number): Destination<T> {
    let d = this.destinations.get(key);
    if (!d) {
      d = { active: [], meanMs: null, parked: [], deferredUntil: [], lastUsed: now };
      this.destinations.set(key, d);
    }
    d.lastUsed = now;
    return d;
  }

  private grant(key: string, d: Destination<T>, now: number): Permit {
    d.active.push(now);
    return { key, grantedAt: now };
  }

  /** How long one send to `d` takes, as far as is known now. */
  private serviceMs(d: Destination<T>, now: number): number {
    const oldest = d.active.length ? now - Math.min(...d.active) : 0;
    return Math.max(d.meanMs ?? 0, oldest);
  }

  /**
   * How long a send that has been running `age` ms is still expected to take: the rest of the mean
   * while it is younger than the mean; a little longer while it is within twice the mean; otherwise
   * (or with no mean yet) as long again as it has taken — a send far beyond the mean says the
   * destination has become slow.
   */
  private remainingMs(d: Destination<T>, age: number): number {
    const mean = d.meanMs;
    if (mean === null || age > 2 * mean) return age;
    return age <= mean ? mean - age : 0;
  }

  /**
   * Expected wait of a job with `ahead` jobs before it: the permits free now, or when their sends
   * are expected to end, in that order; `ahead` past `max` waits for further rounds of sends.
   */
  private expectedWait(d: Destination<T>, ahead: number, now: number): number {
    const max = this.options.max;
    const round = Math.floor(ahead / max);
    const idx = (ahead % max) - (max - d.active.length);
    const first =
      idx < 0 ? 0 : (d.active.map((g) => this.remainingMs(d, now - g)).sort((a, b) => a - b)[idx] as number);
    return first + round * this.serviceMs(d, now);
  }

  /** Whether a job may park: only where sends have been seen to finish (a new destination may be slow). */
  private fits(d: Destination<T>, ahead: number, deadline: number, now: number): boolean {
    if (d.meanMs === null) return false;
    return now + this.expectedWait(d, ahead, now) <= Math.min(now + this.parkWithinMs, deadline);
  }

  /** When a job should come back: its turn after the parked jobs and those deferred before it. */
  private deferral(d: Destination<T>, parkedAhead: number, now: number): number {
    const times = d.deferredUntil;
    times.splice(0, firstAfter(times, now));
    const at = Math.min(
      now + this.maxDeferMs,
      Math.max(now + this.minDeferMs, now + this.expectedWait(d, parkedAhead + times.length, now)),
    );
    times.splice(firstAfter(times, at), 0, at);
    return at;
  }

  private forget(now: number): void {
    this.lastForget = now;
    for (const [key, d] of this.destinations) {
      if (
        !d.active.length &&
        !d.parked.length &&
        now - d.lastUsed > FORGET_AFTER_MS &&
        !d.deferredUntil.some((t) => t > now)
      )
        this.destinations.delete(key);
    }
  }
}

/** Index of the first element of the sorted `times` greater than `t`. */
function firstAfter(times: readonly number[], t: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((times[mid] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
