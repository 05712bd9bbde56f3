/** A kept-alive HTTP client for Herald's API, used by the scenarios to set up users and send notifications. */
import { Pool } from 'undici';
import { BENCH_API_KEY } from './herald-process.ts';

export interface ApiAnswer {
  status: number;
  json: any;
}

export class HeraldClient {
  private readonly pool: Pool;

  constructor(url: string, connections = 64) {
    this.pool = new Pool(url, { connections, keepAliveTimeout: 60_000, pipelining: 1 });
  }

  async call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<ApiAnswer> {
    const res = await this.pool.request({
      method,
      path,
      headers: {
        authorization: `Bearer ${BENCH_API_KEY}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.statusCode, json };
  }

  /** POST /v1/notifications; throws unless 202. Returns the notification id. */
  async send(notification: Record<string, unknown>): Promise<string> {
    const r = await this.call('POST', '/v1/notifications', notification);
    if (r.status !== 202) throw new Error(`POST /v1/notifications answered ${r.status}: ${JSON.stringify(r.json)}`);
    return r.json.id as string;
  }

  /** PUT /v1/users/{id} for each id, `concurrency` at a time. */
  async putUsers(ids: readonly string[], profile: (id: string) => Record<string, unknown>, concurrency = 32) {
    await forEachLimit(ids, concurrency, async (id) => {
      const r = await this.call('PUT', `/v1/users/${encodeURIComponent(id)}`, profile(id));
      if (r.status !== 200) throw new Error(`PUT /v1/users/${id} answered ${r.status}: ${JSON.stringify(r.json)}`);
    });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Runs `fn` over `items`, at most `limit` at once. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  });
  await Promise.all(lanes);
}
