/**
 * The in-app inbox through the API: item shape, newest first, paging with `before` and `limit`,
 * the `unread=true` filter, and marking read by seqs, up to a seq, or all — which the producer then
 * sees as deliveries in status `read`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { bearer, userToken } from './support/http.ts';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ITEM_KEYS = ['body', 'category', 'createdAt', 'data', 'id', 'priority', 'readAt', 'seq', 'title'];

describe('in-app inbox', () => {
  let t: TestHerald;
  /** Notification ids sent to `user`, oldest first, with seqs 1..5. */
  const sent: string[] = [];
  const user = 'gus';

  beforeAll(async () => {
    t = await startTestHerald({ store: 'pglite' });
    // One at a time, each delivered before the next, so seq order is send order.
    for (let i = 1; i <= 5; i++) {
      const res = await t.api('POST', '/v1/notifications', {
        to: [user],
        category: `thread.msg${i}`,
        priority: i === 3 ? 'high' : 'normal',
        title: `Message ${i}`,
        body: i === 2 ? null : `Body ${i}`,
        data: { n: i, nested: { list: [i, 'x'] } },
      });
      expect(res.status).toBe(202);
      sent.push(res.json.id);
      await eventually(
        async () => (await t.api('GET', `/v1/users/${user}/inbox`)).json.items.length === i,
        `item ${i} in the inbox`,
      );
    }
  });
  afterAll(async () => {
    await t?.stop();
  });

  const inbox = async (query = '', headers: Record<string, string> = {}) => {
    const res = await t.api('GET', `/v1/users/${user}/inbox${query}`, undefined, headers);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    return res.json;
  };

  it('GET inbox: items newest first, in the shape of the contract, with unreadCount and nextBefore', async () => {
    const page = await inbox();
    expect(Object.keys(page).sort()).toEqual(['items', 'nextBefore', 'unreadCount']);
    expect(page.unreadCount).toBe(5);
    expect(page.nextBefore).toBeNull();
    expect(page.items.map((i: { seq: number }) => i.seq)).toEqual([5, 4, 3, 2, 1]);
    expect(page.items.map((i: { id: string }) => i.id)).toEqual([...sent].reverse());

    for (const item of page.items) expect(Object.keys(item).sort()).toEqual(ITEM_KEYS);
    const third = page.items.find((i: { seq: number }) => i.seq === 3);
    expect(third).toEqual({
      id: sent[2],
      seq: 3,
      category: 'thread.msg3',
      priority: 'high',
      title: 'Message 3',
      body: 'Body 3',
      data: { n: 3, nested: { list: [3, 'x'] } },
      createdAt: expect.stringMatching(ISO),
      readAt: null,
    });
    expect(page.items.find((i: { seq: number }) => i.seq === 2).body).toBeNull();

    // The user sees the same page with its own token.
    expect(await inbox('', bearer(userToken(user)))).toEqual(page);
  });

  it('pages with limit and before until nextBefore is null', async () => {
    const first = await inbox('?limit=2');
    expect(first.items.map((i: { seq: number }) => i.seq)).toEqual([5, 4]);
    expect(first.nextBefore).toBe(4);
    expect(first.unreadCount).toBe(5);

    const second = await inbox(`?limit=2&before=${first.nextBefore}`);
    expect(second.items.map((i: { seq: number }) => i.seq)).toEqual([3, 2]);
    expect(second.nextBefore).toBe(2);

    const last = await inbox(`?limit=2&before=${second.nextBefore}`);
    expect(last.items.map((i: { seq: number }) => i.seq)).toEqual([1]);
    expect(last.nextBefore).toBeNull();

    // An exact fit: no next page announced.
    const all = await inbox('?limit=5');
    expect(all.items).toHaveLength(5);
    expect(all.nextBefore).toBeNull();
    expect((await inbox('?before=1')).items).toEqual([]);
  });

  it('POST inbox/read with seqs, upToSeq and all → unreadCount; unread=true filters; deliveries become read', async () => {
    const read = (body: unknown, headers?: Record<string, string>) =>
      t.api('POST', `/v1/users/${user}/inbox/read`, body, headers);

    const bySeqs = await read({ seqs: [5, 3] });
    expect(bySeqs.status).toBe(200);
    expect(bySeqs.json).toEqual({ unreadCount: 3 });

    const unread = await inbox('?unread=true');
    expect(unread.items.map((i: { seq: number }) => i.seq)).toEqual([4, 2, 1]);
    expect(unread.unreadCount).toBe(3);
    const paged = await inbox('?unread=true&limit=2');
    expect(paged.items.map((i: { seq: number }) => i.seq)).toEqual([4, 2]);
    expect(paged.nextBefore).toBe(2);
    expect((await inbox(`?unread=true&before=${paged.nextBefore}`)).items.map((i: { seq: number }) => i.seq)).toEqual([
      1,
    ]);

    const items = (await inbox()).items as { seq: number; readAt: string | null }[];
    for (const i of items) {
      if (i.seq === 5 || i.seq === 3) expect(i.readAt).toMatch(ISO);
      else expect(i.readAt).toBeNull();
    }
    // Marking read again changes nothing.
    expect((await read({ seqs: [5] })).json).toEqual({ unreadCount: 3 });

    // upToSeq, by the user itself.
    const upTo = await read({ upToSeq: 2 }, bearer(userToken(user)));
    expect(upTo.status).toBe(200);
    expect(upTo.json).toEqual({ unreadCount: 1 });
    expect((await inbox('?unread=true')).items.map((i: { seq: number }) => i.seq)).toEqual([4]);

    const all = await read({ all: true });
    expect(all.json).toEqual({ unreadCount: 0 });
    expect(await inbox('?unread=true')).toEqual({ items: [], unreadCount: 0, nextBefore: null });
    expect((await inbox()).items).toHaveLength(5);

    for (const id of sent) {
      const n = (await t.api('GET', `/v1/notifications/${id}`)).json;
      expect(n.deliveries).toEqual([expect.objectContaining({ userId: user, channel: 'in_app', status: 'read' })]);
      expect(n.timeline.map((e: { event: string }) => e.event)).toContain('read');
      expect(n.status).toBe('done');
    }
  });

  it("another user's inbox is separate: empty, with its own count", async () => {
    expect(await t.api('GET', '/v1/users/someone-else/inbox').then((r) => r.json)).toEqual({
      items: [],
      unreadCount: 0,
      nextBefore: null,
    });
  });
});
