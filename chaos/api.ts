/**
 * The producer's side of a chaos run: Herald's HTTP API over kept-alive connections, spread round
 * robin over every api process given (as a producer behind a load balancer would), with a timeout
 * per request so that a stalled process answers "unknown", never hangs the run.
 */
import { Pool } from 'undici';
import { CHAOS_API_KEY } from './cluster.ts';

export interface Answer {
  status: number;
  json: any;
}

export class ChaosApi {
  private readonly pools: Pool[];
  private next = 0;

  constructor(
    urls: readonly string[],
    private readonly timeoutMs = 15_000,
    connections = 16,
  ) {
    if (!urls.length) throw new Error('ChaosApi needs at least one api process');
    this.pools = urls.map(
      (u) =>
        new Pool(u, {
          connections,
          keepAliveTimeout: 30_000,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          connectTimeout: 5_000,
        }),
    );
  }

  /** One request to the next api process; rejects when the connection fails or times out. */
  async call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<Answer> {
    const pool = this.pools[this.next++ % this.pools.length] as Pool;
    const res = await pool.request({
      method,
      path,
      headers: {
        authorization: `Bearer ${CHAOS_API_KEY}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.body.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.statusCode, json };
  }

  /** POST /v1/notifications; throws unless 202. Resolves with the notification id. */
  async send(notification: Record<string, unknown>): Promise<string> {
    const r = await this.call('POST', '/v1/notifications', notification);
    if (r.status !== 202) throw new Error(`POST /v1/notifications answered ${r.status}: ${JSON.stringify(r.json)}`);
    return r.json.id as string;
  }

  /** PUT /v1/users/{id} for each id, `concurrency` at a time; throws unless every answer is 200. */
  async putUsers(ids: readonly string[], profile: (id: string) => Record<string, unknown>, concurrency = 16) {
    await forEachLimit(ids, concurrency, async (id) => {
      const r = await this.call('PUT', `/v1/users/${encodeURIComponent(id)}`, profile(id));
      if (r.status !== 200) throw new Error(`PUT /v1/users/${id} answered ${r.status}: ${JSON.stringify(r.json)}`);
    });
  }

  /** A user token (POST /v1/users/{id}/tokens), for the SDK clients. */
  async token(userId: string): Promise<string> {
    const r = await this.call('POST', `/v1/users/${encodeURIComponent(userId)}/tokens`);
    if (r.status !== 200 && r.status !== 201) throw new Error(`token for ${userId}: HTTP ${r.status}`);
    return r.json.token as string;
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((p) => p.destroy()));
  }
}

/** Runs `fn` over `items`, at most `limit` at once. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  });
  await Promise.all(lanes);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` every `everyMs` until it returns true or `timeoutMs` passes; resolves with whether it did. */
export async function until(fn: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 250): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
}
