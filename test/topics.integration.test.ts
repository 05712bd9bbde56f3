/**
 * Topics over HTTP, on both stores: the subscriber endpoints of API.md Part 2 (counts, paging, bad
 * input naming the field), and `to: {"topic"}` — `202` with `recipients: null`, every subscriber at
 * acceptance served exactly once through keyset pages, progress in the timeline, `recipients` once
 * known; one who subscribed after acceptance gets nothing, one who unsubscribed before neither, and
 * one who unsubscribes after acceptance is still served (the audience is fixed at acceptance).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOPIC_SHAPES } from '../src/api/openapi-topics.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { expectError, expectNamesField } from './support/http.ts';

const freshTopic = () => `t-${randomUUID().slice(0, 8)}`;
const users = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);

function expectShape(shape: keyof typeof TOPIC_SHAPES, value: unknown) {
  const r = TOPIC_SHAPES[shape].schema.safeParse(value);
  expect(r.success ? [] : r.error.issues, JSON.stringify(value)).toEqual([]);
}

describe.each(['pglite', 'postgres'] as const)('topics (%s)', (storeKind) => {
  let t: TestHerald;
  beforeAll(async () => {
    // Small pages: a few hundred subscribers take several pages.
    t = await startTestHerald({ store: storeKind, env: { HERALD_FANOUT_PAGE: '100' } });
  });
  afterAll(async () => {
    await t?.stop();
  });
  const sql = () => (t.herald.adapters.store as SqlStore).sql;
  const subscribers = (topic: string) => `/v1/topics/${encodeURIComponent(topic)}/subscribers`;
  /** Inbox entries of the notification per user. */
  async function entriesPerUser(notificationId: string): Promise<Map<string, number>> {
    const rows = await sql().query<{ user_id: string; n: number }>(
      'SELECT user_id, count(*)::int AS n FROM inbox WHERE notification_id = $1 GROUP BY user_id',
      [notificationId],
    );
    return new Map(rows.map((r) => [r.user_id, r.n]));
  }
  async function finished(id: string) {
    return eventually(async () => {
      const r = await t.api('GET', `/v1/notifications/${id}`);
      return r.json.timeline?.some((e: { event: string }) => e.event === 'fanout_done') ? r.json : null;
    }, `fan-out of ${id} to finish`);
  }

  it('PUT counts the users not subscribed before; DELETE those who were; GET pages and counts', async () => {
    const topic = freshTopic();
    const put = await t.api('PUT', subscribers(topic), { userIds: ['u-b', 'u-a', 'u-c', 'u-a'] });
    expect(put.status).toBe(200);
    expect(put.json).toEqual({ added: 3 });
    expectShape('added', put.json);
    expect((await t.api('PUT', subscribers(topic), { userIds: ['u-a', 'u-d'] })).json).toEqual({ added: 1 });
    expect((await t.api('GET', `/v1/topics/${topic}`)).json).toEqual({ topic, subscribers: 4 });

    const first = await t.api('GET', `${subscribers(topic)}?limit=3`);
    expect(first.status).toBe(200);
    expectShape('subscribers', first.json);
    expect(first.json.items).toEqual(['u-a', 'u-b', 'u-c']);
    const second = await t.api('GET', `${subscribers(topic)}?limit=3&cursor=${first.json.nextCursor}`);
    expect(second.json).toEqual({ items: ['u-d'], nextCursor: null });

    const del = await t.api('DELETE', subscribers(topic), { userIds: ['u-b', 'u-x', 'u-b'] });
    expect(del.status).toBe(200);
    expect(del.json).toEqual({ removed: 1 });
    expectShape('removed', del.json);
    expect((await t.api('DELETE', subscribers(topic), { userIds: ['u-b'] })).json).toEqual({ removed: 0 });
    const topicView = await t.api('GET', `/v1/topics/${topic}`);
    expect(topicView.json).toEqual({ topic, subscribers: 3 });
    expectShape('topic', topicView.json);
    expect((await t.api('GET', subscribers(topic))).json).toEqual({ items: ['u-a', 'u-c', 'u-d'], nextCursor: null });
    // Subscribing again after an unsubscribe counts as added.
    expect((await t.api('PUT', subscribers(topic), { userIds: ['u-b'] })).json).toEqual({ added: 1 });
  });

  it('a topic nobody subscribes to: 200 with 0 subscribers and an empty page', async () => {
    const topic = freshTopic();
    expect(await t.api('GET', `/v1/topics/${topic}`)).toMatchObject({ status: 200, json: { topic, subscribers: 0 } });
    expect((await t.api('GET', subscribers(topic))).json).toEqual({ items: [], nextCursor: null });
  });

  it('bad input → 400 naming the field; nothing is subscribed', async () => {
    const topic = freshTopic();
    const cases: [unknown, string][] = [
      [{}, 'userIds'],
      [{ userIds: [] }, 'userIds'],
      [{ userIds: 'u-1' }, 'userIds'],
      [{ userIds: ['ok', 'has space'] }, 'userIds.1'],
      [{ userIds: ['ok'], extra: 1 }, '(body)'],
      [{ userIds: users('x', 10_001) }, 'userIds'],
    ];
    for (const [body, field] of cases) {
      for (const method of ['PUT', 'DELETE']) {
        const r = await t.api(method, subscribers(topic), body);
        expectNamesField(expectError(r, 'HERALD_ERR_VALIDATION'), field);
      }
    }
    expectNamesField(
      expectError(await t.api('GET', `${subscribers(topic)}?limit=0`), 'HERALD_ERR_VALIDATION'),
      'limit',
    );
    expectNamesField(expectError(await t.api('GET', '/v1/topics/a%20b'), 'HERALD_ERR_VALIDATION'), 'topic');
    expect((await t.api('GET', `/v1/topics/${topic}`)).json.subscribers).toBe(0);
    const anonymous = await t.api('PUT', subscribers(topic), { userIds: ['u'] }, { authorization: '' });
    expectError(anonymous, 'HERALD_ERR_UNAUTHORIZED');
  });

  it('10,000 ids in one call are accepted', async () => {
    const topic = freshTopic();
    const ids = users(`max-${randomUUID().slice(0, 8)}`, 10_000);
    expect((await t.api('PUT', subscribers(topic), { userIds: ids })).json).toEqual({ added: 10_000 });
    expect((await t.api('GET', `/v1/topics/${topic}`)).json.subscribers).toBe(10_000);
  });

  it('to: {"topic"} → 202 with recipients null; every subscriber gets it exactly once, with progress', async () => {
    const topic = freshTopic();
    const audience = users(`f-${randomUUID().slice(0, 6)}`, 345);
    await t.api('PUT', subscribers(topic), { userIds: audience });
    const post = await t.api('POST', '/v1/notifications', { to: { topic }, category: 'news', title: 'Hi' });
    expect(post.status).toBe(202);
    expect(post.json).toMatchObject({ status: 'accepted', recipients: null });
    const view = await finished(post.json.id);
    expect(view.recipients).toBe(345);
    const progress = view.timeline.filter((e: { event: string }) => e.event === 'fanout_progress');
    expect(progress.length).toBeGreaterThanOrEqual(4); // pages of at most 100
    expect(progress.reduce((s: number, e: { detail: { recipients: number } }) => s + e.detail.recipients, 0)).toBe(345);
    const done = view.timeline.find((e: { event: string }) => e.event === 'fanout_done');
    expect(done.detail).toMatchObject({ recipients: 345 });
    // The in-app entries (no deliveries row each, ADR 14) are counted: the counts sum to the audience.
    expect(view.counts).toEqual({ sent: 345 });

    const got = await entriesPerUser(post.json.id);
    expect(got.size).toBe(345);
    expect([...got.values()].every((n) => n === 1)).toBe(true);
    // Each subscriber's inbox shows it, with a seq and unread.
    const inbox = await t.api('GET', `/v1/users/${audience[7]}/inbox`);
    expect(inbox.json.items).toHaveLength(1);
    expect(inbox.json.items[0]).toMatchObject({ id: post.json.id, title: 'Hi', seq: 1, readAt: null });
    expect(inbox.json.unreadCount).toBe(1);
  });

  it('the audience is the subscribers at acceptance: later subscribers and earlier unsubscribers get nothing', async () => {
    const topic = freshTopic();
    const p = `a-${randomUUID().slice(0, 6)}`;
    const stays = users(`${p}-stay`, 250);
    await t.api('PUT', subscribers(topic), { userIds: [...stays, `${p}-left`, `${p}-leaves-after`] });
    await t.api('DELETE', subscribers(topic), { userIds: [`${p}-left`] });
    const post = await t.api('POST', '/v1/notifications', { to: { topic }, category: 'news', title: 'Once' });
    expect(post.status).toBe(202);
    // Right after the 202, while the pages may still run: one subscribes (sorting first and last),
    // one unsubscribes.
    await t.api('PUT', subscribers(topic), { userIds: [`${p}-0-late`, `${p}-zz-late`, `${p}-left`] });
    await t.api('DELETE', subscribers(topic), { userIds: [`${p}-leaves-after`] });
    const view = await finished(post.json.id);
    expect(view.recipients).toBe(251);
    const got = await entriesPerUser(post.json.id);
    expect(got.size).toBe(251);
    for (const u of stays) expect(got.get(u), u).toBe(1);
    expect(got.get(`${p}-leaves-after`)).toBe(1);
    expect(got.has(`${p}-left`)).toBe(false);
    expect(got.has(`${p}-0-late`)).toBe(false);
    expect(got.has(`${p}-zz-late`)).toBe(false);
  });

  it('a topic with no subscribers: done at once with 0 recipients', async () => {
    const post = await t.api('POST', '/v1/notifications', { to: { topic: freshTopic() }, category: 'news' });
    expect(post.status).toBe(202);
    const view = await finished(post.json.id);
    expect(view.recipients).toBe(0);
  });

  it('the idempotency hash covers the topic: same key for another topic → 409', async () => {
    const key = randomUUID();
    const body = { to: { topic: freshTopic() }, category: 'news' };
    const first = await t.api('POST', '/v1/notifications', body, { 'idempotency-key': key });
    expect(first.status).toBe(202);
    const again = await t.api('POST', '/v1/notifications', body, { 'idempotency-key': key });
    expect(again.json).toEqual(first.json);
    const other = await t.api(
      'POST',
      '/v1/notifications',
      { ...body, to: { topic: freshTopic() } },
      {
        'idempotency-key': key,
      },
    );
    expectError(other, 'HERALD_ERR_IDEMPOTENCY_CONFLICT');
  });
});
