/**
 * Rate limit for repeated error and warning lines. During an outage (PostgreSQL gone) every lane's
 * claim loop, every maintenance task, every request and every socket fails over and over; written in
 * full each time, that is hundreds of stack traces a minute that bury the one line that matters.
 *
 * Guarantees, per kind of failure (the message, the level and the error's `code` or `name`):
 * - the first occurrence is written in full, as given (with its error and stack);
 * - further ones within `intervalMs` are counted, not written; when the interval ends, one summary
 *   line says how many were left out and what the last error said (no stack);
 * - while they keep coming, at most one summary per interval; after a whole quiet interval the kind
 *   is forgotten, and its next occurrence is written in full again;
 * - `stop()` writes the summaries still owed. Nothing is ever dropped without being counted.
 * Other levels (info, debug) are not throttled and do not pass through here.
 */

export interface LineLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LogThrottleOptions {
  /** Default 10 s. */
  intervalMs?: number;
  /** Clock (ms); default Date.now. */
  now?: () => number;
}

type Level = 'error' | 'warn';

interface Kind {
  level: Level;
  msg: string;
  /** Start of the current interval. */
  since: number;
  /** Occurrences counted, not written, in this interval. */
  suppressed: number;
  last: object;
}

export class LogThrottle implements LineLog {
  readonly intervalMs: number;
  private readonly now: () => number;
  private readonly kinds = new Map<string, Kind>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: LineLog,
    options: LogThrottleOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  error(obj: object, msg: string): void {
    this.record('error', obj, msg);
  }

  warn(obj: object, msg: string): void {
    this.record('warn', obj, msg);
  }

  /** Writes the summaries of intervals that have ended; start() calls it on a timer. */
  flush(): void {
    const now = this.now();
    for (const [key, kind] of this.kinds) if (now - kind.since >= this.intervalMs) this.endInterval(key, kind, now);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.flush(), Math.max(50, Math.floor(this.intervalMs / 4)));
    this.timer.unref();
  }

  /** Stops the timer and writes every summary still owed. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const now = this.now();
    for (const [key, kind] of this.kinds) {
      if (kind.suppressed > 0) this.summarize(kind, now);
      this.kinds.delete(key);
    }
  }

  private record(level: Level, obj: object, msg: string): void {
    const key = `${level}\u0000${msg}\u0000${errorKind(obj)}`;
    const now = this.now();
    let kind = this.kinds.get(key);
    if (kind && now - kind.since >= this.intervalMs) {
      this.endInterval(key, kind, now);
      kind = this.kinds.get(key);
    }
    if (kind) {
      kind.suppressed++;
      kind.last = obj;
      return;
    }
    this.kinds.set(key, { level, msg, since: now, suppressed: 0, last: obj });
    this.log[level](obj, msg);
  }

  private endInterval(key: string, kind: Kind, now: number): void {
    if (kind.suppressed === 0) {
      this.kinds.delete(key);
      return;
    }
    this.summarize(kind, now);
    // Still failing: keep counting into the next interval.
    kind.since = now;
    kind.suppressed = 0;
  }

  private summarize(kind: Kind, now: number): void {
    const seconds = Math.max(1, Math.round((now - kind.since) / 1000));
    const { err, ...context } = kind.last as { err?: unknown };
    this.log[kind.level](
      { ...context, suppressed: kind.suppressed, ...(err === undefined ? {} : { lastError: briefError(err) }) },
      `${kind.msg} (${kind.suppressed} more in the last ${seconds} s, not written; the first was written in full)`,
    );
  }
}

function errorKind(obj: object): string {
  const err = (obj as { err?: unknown }).err;
  if (err === null || typeof err !== 'object') return '';
  const { code, name } = err as { code?: unknown; name?: unknown };
  return String(code ?? name ?? '');
}

function briefError(err: unknown): { message: string; code?: string } {
  if (err === null || typeof err !== 'object') return { message: String(err) };
  const { message, code } = err as { message?: unknown; code?: unknown };
  return { message: String(message ?? err), ...(code === undefined ? {} : { code: String(code) }) };
}
