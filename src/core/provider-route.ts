/**
 * A channel's route: its providers in fallback order (two SMTP relays, two SMS accounts), each with
 * its own circuit breaker and send pace (src/core/circuit-breaker.ts, provider-pacer.ts).
 *
 * For one delivery, providers are tried in order:
 * - an open breaker, or a pace that would make the send wait longer than `maxWaitMs`, passes the
 *   delivery to the next provider without sending;
 * - sent → done, the provider's name in the detail (and so in the timeline);
 * - transient failure → counted by the breaker, and the next provider is tried in the same attempt;
 * - permanent failure or skipped (the user has no address) → done: another provider cannot help.
 * A provider is tried only while its whole timeout fits in what is left of the attempt's budget: a
 * primary that refuses connections falls back at once, one that times out leaves the fallback to the
 * next attempt (when its breaker may be open).
 * When no provider sent, the attempt is transient: every provider's reason in the error, and
 * `retryAfterMs` no earlier than the first provider could take it again (a breaker's probe time or
 * its pace), so a retry is not spent against a wall.
 *
 * A send that waits for its pace (a token taken when it may start, never booked ahead: see
 * provider-pacer.ts) holds its worker slot meanwhile: the provider's rate, not the
 * worker, is then the bottleneck, and every slot waiting keeps the queue in order.
 * The pace is this process's own, or — given a shared RateLimiter (Redis) — one for every worker
 * process together (provider-pace-shared.ts): then the provider's limit holds across them.
 */
import { performance } from 'node:perf_hooks';
import { type BreakerSettings, type BreakerStatus, CircuitBreaker } from './circuit-breaker.ts';
import type { ChannelRoute } from './dispatch.ts';
import type { ChannelProvider, RateLimiter, SendResult } from './ports-channels.ts';
import { SharedPace } from './provider-pace-shared.ts';
import { type PaceSettings, ProviderPacer, type SendPace } from './provider-pacer.ts';
import type { Channel, DeliveryJob, JsonValue } from './types.ts';

export interface RoutedProviderSettings {
  /** Null: no breaker (providers whose failures are one receiver's, not the provider's: webhooks, chat). */
  breaker: BreakerSettings | null;
  /** Null: no pace. */
  pace: PaceSettings | null;
  /**
   * Where the pace's tokens are kept when several processes send through this provider: a limiter
   * of the pace's rate and burst (the Redis one), keyed `provider:<name>`. Absent: in this process.
   */
  paceLimiter?: RateLimiter | undefined;
  /** The longest one send to it can take. */
  timeoutMs: number;
}

/** What one provider did with one delivery (for metrics and logs). */
export interface ProviderAttempt {
  provider: string;
  channel: Channel;
  /** `open`: not tried, its breaker is open; `paced`: not tried, its pace was too far out. */
  outcome: 'sent' | 'transient' | 'permanent' | 'skipped' | 'open' | 'paced';
  /** When the send started (ms since the epoch, sub-millisecond), or when the provider was passed over. */
  startedAt: number;
  ms: number;
}

export interface ProviderStatus {
  name: string;
  channel: Channel;
  /** Place in the channel's fallback order, from 0. */
  order: number;
  circuit: BreakerStatus | null;
  rateLimit: PaceSettings | null;
  sent: number;
  failed: number;
  lastError: string | null;
  lastErrorAt: Date | null;
}

/** One provider in a route, with its breaker, pace and counts. */
export class RoutedProvider {
  readonly breaker: CircuitBreaker | null;
  readonly pacer: SendPace | null;
  sent = 0;
  failed = 0;
  lastError: string | null = null;
  lastErrorAt: Date | null = null;

  readonly timeoutMs: number;

  constructor(
    readonly provider: ChannelProvider,
    settings: RoutedProviderSettings,
  ) {
    this.timeoutMs = settings.timeoutMs;
    this.breaker = settings.breaker ? new CircuitBreaker(settings.breaker) : null;
    this.pacer = !settings.pace
      ? null
      : settings.paceLimiter
        ? new SharedPace(settings.pace, settings.paceLimiter, `provider:${provider.name}`)
        : new ProviderPacer(settings.pace);
  }

  get name(): string {
    return this.provider.name;
  }

  /** Milliseconds until this provider could take a send. */
  waitFor(): number {
    return Math.max(this.breaker?.waitFor() ?? 0, this.pacer?.waitFor() ?? 0);
  }
}

export interface ProviderRouteOptions {
  /** Longest a send may wait for a provider's pace before the next provider is tried. */
  maxWaitMs: number;
  /**
   * Time one delivery's attempt may take, waits and fallbacks included (the worker's send budget):
   * a provider is tried only while its whole timeout still fits.
   */
  budgetMs: number;
  observe?: (attempt: ProviderAttempt) => void;
}

export class ProviderRoute implements ChannelRoute {
  constructor(
    readonly channel: Channel,
    readonly providers: readonly RoutedProvider[],
    private readonly options: ProviderRouteOptions,
  ) {
    if (providers.length === 0) throw new RangeError(`a route for ${channel} needs at least one provider`);
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    const reasons: string[] = [];
    const start = performance.now();
    for (const p of this.providers) {
      // Spare time: what the budget leaves after this provider's whole timeout (for waiting on its
      // pace). A fallback is tried only if its timeout fits; the first provider always is (the worker
      // started the attempt with a budget that fits its send).
      const left = this.options.budgetMs - (performance.now() - start) - p.timeoutMs;
      if (left < 0 && p !== this.providers[0]) {
        reasons.push(`${p.name}: no time left in this attempt`);
        break;
      }
      if (p.breaker && !p.breaker.allow()) {
        reasons.push(`${p.name}: circuit open`);
        this.observe(p, 'open');
        continue;
      }
      if (p.pacer && !(await p.pacer.take(Math.min(this.options.maxWaitMs, Math.max(0, left))))) {
        p.breaker?.released();
        reasons.push(`${p.name}: over its rate limit`);
        this.observe(p, 'paced');
        continue;
      }
      const started = performance.now();
      let result: SendResult;
      try {
        result = await p.provider.send(job);
      } catch (e) {
        result = {
          ok: false,
          permanent: false,
          error: `provider error: ${e instanceof Error ? e.message : String(e)}`,
        };
      }
      const ms = performance.now() - started;
      const startedAt = performance.timeOrigin + started;
      if (result.ok) {
        p.breaker?.succeeded();
        p.sent++;
        this.observe(p, 'sent', ms, startedAt);
        return { ok: true, detail: withProvider(result.detail, p.name, reasons) };
      }
      if ('skipped' in result) {
        p.breaker?.released();
        this.observe(p, 'skipped', ms, startedAt);
        return result;
      }
      p.failed++;
      p.lastError = result.error;
      p.lastErrorAt = new Date();
      if (result.permanent) {
        // The provider answered: it is up, the message is what it refused.
        p.breaker?.succeeded();
        this.observe(p, 'permanent', ms, startedAt);
        return this.providers.length > 1 ? { ...result, error: `${p.name}: ${result.error}` } : result;
      }
      p.breaker?.failed();
      this.observe(p, 'transient', ms, startedAt);
      reasons.push(this.providers.length > 1 ? `${p.name}: ${result.error}` : result.error);
      if (p === this.providers[this.providers.length - 1]) {
        return { ok: false, permanent: false, error: reasons.join('; '), ...this.retryAfter(result.retryAfterMs) };
      }
    }
    return {
      ok: false,
      permanent: false,
      error: `no provider could take it: ${reasons.join('; ')}`,
      ...this.retryAfter(),
    };
  }

  /** When the first provider could take the delivery again, at least `said` (a provider's Retry-After). */
  private retryAfter(said?: number): { retryAfterMs?: number } {
    const soonest = Math.min(...this.providers.map((p) => p.waitFor()));
    const ms = Math.max(soonest, said ?? 0);
    return ms > 0 ? { retryAfterMs: Math.ceil(ms) } : {};
  }

  status(): ProviderStatus[] {
    return this.providers.map((p, order) => ({
      name: p.name,
      channel: this.channel,
      order,
      circuit: p.breaker?.status() ?? null,
      rateLimit: p.pacer?.settings ?? null,
      sent: p.sent,
      failed: p.failed,
      lastError: p.lastError,
      lastErrorAt: p.lastErrorAt,
    }));
  }

  private observe(
    p: RoutedProvider,
    outcome: ProviderAttempt['outcome'],
    ms = 0,
    startedAt = performance.timeOrigin + performance.now(),
  ): void {
    this.options.observe?.({ provider: p.name, channel: this.channel, outcome, startedAt, ms });
  }
}

/** The provider that sent, and the ones passed over before it, added to the sent detail. */
function withProvider(detail: JsonValue | undefined, name: string, passedOver: string[]): JsonValue {
  const base = detail && typeof detail === 'object' && !Array.isArray(detail) ? detail : {};
  return { ...base, provider: name, ...(passedOver.length ? { fallbackFrom: passedOver } : {}) };
}
