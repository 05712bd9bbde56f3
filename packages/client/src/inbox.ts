/**
 * The in-app inbox over HTTP with the user's token (API.md "In-app inbox"). A `401` gets one
 * retry with a fresh token when the client has `getToken`.
 */
import { HeraldApiError } from './errors.ts';
import type { TokenSource } from './token.ts';
import type { FetchLike, InboxItem, InboxPage, ReadSelection } from './types.ts';

export interface InboxListOptions {
  /** 1–200; server default 50. */
  limit?: number;
  /** Only items with a seq below this (the previous page's `nextBefore`). */
  before?: number;
  /** Only unread items. */
  unread?: boolean;
}

export interface InboxDeps {
  baseUrl: string;
  fetch: FetchLike;
  tokens: TokenSource;
  /** The user whose inbox this is, when known. */
  userId(): string | null;
}

export class Inbox {
  constructor(private readonly deps: InboxDeps) {}

  /** One page, newest first. */
  list(options: InboxListOptions = {}): Promise<InboxPage> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.before !== undefined) query.set('before', String(options.before));
    if (options.unread !== undefined) query.set('unread', String(options.unread));
    const qs = query.toString();
    return this.request<InboxPage>('GET', `/inbox${qs ? `?${qs}` : ''}`);
  }

  /** Every page from `before` (default: the newest) to the oldest. */
  async *pages(options: InboxListOptions = {}): AsyncGenerator<InboxPage, void, undefined> {
    let before = options.before;
    for (;;) {
      const page = await this.list({ ...options, ...(before === undefined ? {} : { before }) });
      yield page;
      if (page.nextBefore === null || page.items.length === 0) return;
      before = page.nextBefore;
    }
  }

  /** Every item, newest first, fetching pages as it goes. */
  async *items(options: InboxListOptions = {}): AsyncGenerator<InboxItem, void, undefined> {
    for await (const page of this.pages(options)) yield* page.items;
  }

  /** Marks items read; answers the unread count after it. */
  async markRead(selection: ReadSelection): Promise<number> {
    const { unreadCount } = await this.request<{ unreadCount: number }>('POST', '/inbox/read', selection);
    return unreadCount;
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { tokens } = this.deps;
    let token = await tokens.get();
    let res = await this.send(method, path, token, body);
    if (res.status === 401 && tokens.canRefresh) {
      token = await tokens.refresh();
      res = await this.send(method, path, token, body);
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: described below from the status.
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
      throw new HeraldApiError(
        res.status,
        typeof err?.code === 'string' ? err.code : `HTTP_${res.status}`,
        typeof err?.message === 'string' ? err.message : `${method} ${path} answered ${res.status}`,
        err?.details ?? null,
      );
    }
    return json as T;
  }

  private send(method: string, path: string, token: string, body: unknown) {
    const userId = this.deps.userId();
    if (!userId) {
      throw new TypeError('the inbox needs a user id: pass `userId`, a JWT with `sub`, or connect() first');
    }
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return this.deps.fetch(`${this.deps.baseUrl}/v1/users/${encodeURIComponent(userId)}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }
}
