/**
 * A provider's send pace shared by every worker process: its tokens are taken through the
 * RateLimiter port (a limiter of the pace's rate and burst, one key per provider), so with the Redis
 * limiter the provider's limit — at most `perSecond × t + burst` sends started in any `t` seconds —
 * holds for all workers together, not for each. A token is taken at the moment the send may start,
 * never booked ahead, as in the in-process pacer (provider-pacer.ts).
 *
 * Waiting: a refused take consumes nothing and says when the next token is due (`retryAfterMs`, or
 * `retryAfterSeconds` from a limiter that does not give it); the send sleeps that long and asks
 * again, until the wait would pass its `maxWaitMs` — then it gives up having consumed nothing, and
 * the route tries the next provider.
 *
 * Within one process the waiting sends form a line: only the first asks the limiter, the others wait
 * for their turn, so a process asks about once per token (32 waiting slots would otherwise ask Redis
 * 32 times for every token) and its sends start in the order they came. A send gives up at once when
 * even with no other process competing its turn could not come in time (its place in line × the
 * interval, after the next token is due). Between processes there is no line: a token goes to the
 * first process that asks once it is due, so the share each gets is rough; the limit is exact, since
 * the limiter decides every token.
 *
 * If the limiter cannot reach its store it decides alone (the Redis limiter falls back to a bucket
 * of this process's own): the pace then holds per process until the store is back.
 */
import { performance } from 'node:perf_hooks';
import type { RateLimiter } from './ports-channels.ts';
import type { PaceSettings, SendPace } from './provider-pacer.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SharedPace implements SendPace {
  /** Milliseconds per send. */
  private readonly interval: number;
  /** When the limiter last said the next token is due (ms, on `clock`); past: now, as far as we know. */
  private dueAt = Number.NEGATIVE_INFINITY;
  /** Sends in line in this process, the one asking included. */
  private waiting = 0;
  /** Settles when the last send in line has had its turn. */
  private tail: Promise<void> = Promise.resolve();

  constructor(
    readonly settings: PaceSettings,
    private readonly limiter: RateLimiter,
    /** The bucket's key: one per provider (`provider:<name>`), the same in every process. */
    private readonly key: string,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.interval = 1000 / settings.perSecond;
  }

  async take(maxWaitMs: number): Promise<boolean> {
    const now = this.clock();
    const deadline = now + maxWaitMs;
    // The soonest this send's turn could come: the next token, then one for each send ahead of it.
    if (Math.max(0, this.dueAt - now) + this.waiting * this.interval > maxWaitMs) return false;
    const ahead = this.tail;
    let done!: () => void;
    const mine = new Promise<void>((r) => {
      done = r;
    });
    // The next send's turn comes when this one's has, and this one is done (or has given up).
    this.tail = ahead.then(() => mine);
    this.waiting++;
    try {
      if (!(await settlesWithin(ahead, Math.max(0, deadline - this.clock())))) return false;
      for (;;) {
        const d = await this.limiter.take(this.key);
        const at = this.clock();
        if (d.allowed) return true;
        const wait = d.retryAfterMs ?? d.retryAfterSeconds * 1000;
        this.dueAt = at + wait;
        if (at + wait > deadline) return false;
        await sleep(Math.max(1, wait));
      }
    } finally {
      this.waiting--;
      done();
    }
  }

  waitFor(): number {
    return Math.max(0, this.dueAt - this.clock());
  }
}

/** True when `p` settles within `ms` (at once if it has: the race is decided before any timer); else false. */
async function settlesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
