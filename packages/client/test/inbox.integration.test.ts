/** The client's inbox helpers against a real Herald, over HTTP with the user's token. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldClient } from '../src/client.ts';
import { HeraldApiError } from '../src/errors.ts';
import type { InboxItem } from '../src/types.ts';
import { issueToken, newUser, notify, signToken, startHerald, storedInbox, type TestHerald } from './harness.ts';

let h: TestHerald;

beforeAll(async () => {
  h = await startHerald();
});
afterAll(async () => {
  await h?.stop();
});

describe('client.inbox against a real Herald', () => {
  it('pages through 120 items newest first, filters unread and marks read by seqs, upToSeq and all', async () => {
    const user = newUser('inbox');
    const batches = await Promise.all(Array.from({ length: 12 }, (_, b) => notify(h, user, 10, `b${b}-`)));
    const posted = new Set(batches.flat());
    await storedInbox(h, user, 120);
    // No socket at all: getToken alone, user id from the token's sub.
    const client = new HeraldClient({ url: h.url, getToken: () => issueToken(h, user) });

    const first = await client.inbox.list({ limit: 50 });
    expect(first.items.map((i) => i.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 120 - i));
    expect(first.unreadCount).toBe(120);
    expect(first.nextBefore).toBe(71);
    expect(first.items[0]).toMatchObject({ category: 'client.test', readAt: null });

    const sizes: number[] = [];
    const all: InboxItem[] = [];
    for await (const page of client.inbox.pages({ limit: 50 })) {
      sizes.push(page.items.length);
      all.push(...page.items);
    }
    expect(sizes).toEqual([50, 50, 20]);
    expect(all.map((i) => i.seq)).toEqual(Array.from({ length: 120 }, (_, i) => 120 - i));
    expect(new Set(all.map((i) => i.id))).toEqual(posted);

    let viaItems = 0;
    for await (const _ of client.inbox.items({ limit: 33 })) viaItems++;
    expect(viaItems).toBe(120);

    expect(await client.inbox.markRead({ upToSeq: 60 })).toBe(60);
    expect(await client.inbox.markRead({ seqs: [61, 62] })).toBe(58);
    const unreadSeqs: number[] = [];
    for await (const page of client.inbox.pages({ limit: 25, unread: true })) {
      unreadSeqs.push(...page.items.map((i) => i.seq));
      expect(page.unreadCount).toBe(58);
    }
    expect(unreadSeqs).toEqual(Array.from({ length: 58 }, (_, i) => 120 - i));
    const read = await client.inbox.list({ before: 63, limit: 5 });
    expect(read.items.every((i) => typeof i.readAt === 'string')).toBe(true);

    expect(await client.inbox.markRead({ all: true })).toBe(0);
    expect((await client.inbox.list({ unread: true })).items).toEqual([]);
  });

  it('retries a 401 once with a token from getToken()', async () => {
    const user = newUser('inbox401');
    await notify(h, user, 1);
    await storedInbox(h, user, 1);
    let calls = 0;
    const client = new HeraldClient({
      url: h.url,
      token: await signToken(user, 3600, 'not-the-secret-0123456789abcdef'),
      getToken: async () => {
        calls++;
        return issueToken(h, user);
      },
    });
    expect((await client.inbox.list()).items).toHaveLength(1);
    expect(calls).toBe(1);
  });

  it('rejects with HeraldApiError carrying Herald’s error code', async () => {
    const user = newUser('inboxerr');
    const refused = new HeraldClient({ url: h.url, token: await signToken(user, 3600, 'not-the-secret-0123456789') });
    const e401 = await refused.inbox.list().catch((e: unknown) => e);
    expect(e401).toBeInstanceOf(HeraldApiError);
    expect(e401).toMatchObject({ status: 401, code: 'HERALD_ERR_UNAUTHORIZED' });

    const other = new HeraldClient({ url: h.url, token: await issueToken(h, user), userId: newUser('someone-else') });
    await expect(other.inbox.list()).rejects.toMatchObject({ status: 403, code: 'HERALD_ERR_FORBIDDEN' });

    const mine = new HeraldClient({ url: h.url, token: await issueToken(h, user) });
    await expect(mine.inbox.list({ limit: 500 })).rejects.toMatchObject({ status: 400, code: 'HERALD_ERR_VALIDATION' });
  });
});
