/**
 * POST /v1/notifications/batch on both stores: one result per item in order, only the valid items
 * stored (read back), per-item idempotency keys shared with the Idempotency-Key header, whole-request
 * refusals (envelope, 1,001 items, body size), and a batch committed as one group commit.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../src/core/errors.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { expectError, expectNamesField } from './support/http.ts';

/** Asserts a batch result is the error `code`: exactly `{"status", "error"}`, the error as a single POST shows it. */
function itemError(result: any, code: ErrorCode) {
  expect(Object.keys(result ?? {}), JSON.stringify(result)).toEqual(['status', 'error']);
  return expectError({ status: result.status, json: { error: result.error } }, code);
}

describe.each(['pglite', 'postgres'] as const)('POST /v1/notifications/batch (%s)', (store) => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** Each test uses its own category, so rows can be counted per test. */
  const fresh = () => `batch.c${randomUUID().slice(0, 8)}`;
  const batch = (notifications: unknown) => t.api('POST', '/v1/notifications/batch', { notifications });
  async function count(sql: string, params: unknown[]): Promise<number> {
    const [r] = await (t.herald.adapters.store as SqlStore).sql.query<{ n: number }>(sql, params);
    return r?.n ?? 0;
  }
  const notificationsOf = (category: string) =>
    count('SELECT count(*)::int AS n FROM notifications WHERE category = $1', [category]);
  const deliveriesOf = (category: string) =>
    count(
      'SELECT count(*)::int AS n FROM deliveries d JOIN notifications n ON n.id = d.notification_id WHERE n.category = $1',
      [category],
    );

  it('a batch with invalid items stores only the valid ones and says which failed, in order', async () => {
    const category = fresh();
    const items = [
      { to: ['alice'], category, title: 'one' },
      { to: [], category, title: 'no one' },
      { to: ['bob', 'carol'], category, channels: ['in_app', 'webhook'], title: 'two', priority: 'high' },
      'not an object',
      { to: ['dave'], category: 'Not A Category!', title: 'bad category' },
      { to: ['erin'], category, title: 'three', sendAt: new Date(Date.now() + 3_600_000).toISOString() },
      { to: ['frank'], category, title: 'unknown field', colour: 'red' },
      { to: ['gina'], category, title: 'bad key', idempotencyKey: 'has a space' },
    ];
    const r = await batch(items);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(Object.keys(r.json)).toEqual(['results']);
    const results = r.json.results as any[];
    expect(results.map((x) => x.status)).toEqual([202, 400, 202, 400, 400, 202, 400, 400]);
    expect(results[0]).toEqual({ status: 202, id: expect.any(String), recipients: 1 });
    expect(results[2]).toEqual({ status: 202, id: expect.any(String), recipients: 2 });
    // Each failure is the error POST /v1/notifications answers for that body, its fields named within the item.
    expectNamesField(itemError(results[1], 'HERALD_ERR_VALIDATION'), 'to');
    expectNamesField(itemError(results[3], 'HERALD_ERR_VALIDATION'), '(body)');
    expectNamesField(itemError(results[4], 'HERALD_ERR_VALIDATION'), 'category');
    expect(itemError(results[6], 'HERALD_ERR_VALIDATION').message).toContain('colour');
    expectNamesField(itemError(results[7], 'HERALD_ERR_VALIDATION'), 'idempotencyKey');
    const single = await t.api('POST', '/v1/notifications', items[1]);
    expect(results[1].error).toEqual(single.json.error);

    // Read back: exactly the three valid items, as sent.
    expect(await notificationsOf(category)).toBe(3);
    expect(await deliveriesOf(category)).toBe(1 + 4 + 1);
    const views = await Promise.all(
      [0, 2, 5].map(async (i) => (await t.api('GET', `/v1/notifications/${results[i].id}`)).json),
    );
    expect(views.map((v) => v.title)).toEqual(['one', 'two', 'three']);
    expect(views[1].priority).toBe('high');
    expect(views[1].channels).toEqual(['in_app', 'webhook']);
    expect(views[2].status).toBe('scheduled');
  });

  it('answers 300 items in their order, each id naming its own item', async () => {
    const category = fresh();
    const items = Array.from({ length: 300 }, (_, i) =>
      i % 7 === 3 ? { to: [], category, title: `bad ${i}` } : { to: [`u-${i}`], category, title: `item ${i}` },
    );
    const r = await batch(items);
    expect(r.status).toBe(200);
    const results = r.json.results as any[];
    expect(results).toHaveLength(300);
    const ids = new Set<string>();
    for (const [i, x] of results.entries()) {
      expect(x.status, `item ${i}`).toBe(i % 7 === 3 ? 400 : 202);
      if (x.status === 202) ids.add(x.id);
    }
    expect(ids.size).toBe(300 - Math.ceil((300 - 3) / 7));
    for (const i of [0, 1, 151, 299]) {
      const v = (await t.api('GET', `/v1/notifications/${results[i].id}`)).json;
      expect(v.title).toBe(`item ${i}`);
      expect(v.deliveries.map((d: any) => d.userId)).toEqual([`u-${i}`]);
    }
    expect(await notificationsOf(category)).toBe(ids.size);
  });

  it('an item idempotencyKey replays the first answer and creates nothing; another body is that item 409', async () => {
    const category = fresh();
    const key = `k-${randomUUID()}`;
    const item = { to: ['alice', 'bob'], category, title: 'Shipped', data: { orderId: 42 }, idempotencyKey: key };
    const first = await batch([item]);
    expect(first.json.results[0]).toEqual({ status: 202, id: expect.any(String), recipients: 2 });
    const id = first.json.results[0].id;

    // Again, with the body's keys in another order, beside a new item and a conflicting one.
    const reordered = { idempotencyKey: key, data: { orderId: 42 }, title: 'Shipped', category, to: ['alice', 'bob'] };
    const again = await batch([reordered, { to: ['carol'], category, title: 'new' }, { ...item, title: 'Other' }]);
    expect(again.status).toBe(200);
    const [replay, fresh1, conflict] = again.json.results;
    expect(replay).toEqual(first.json.results[0]);
    expect(fresh1.status).toBe(202);
    const error = itemError(conflict, 'HERALD_ERR_IDEMPOTENCY_CONFLICT');
    expect(error.details).toEqual({ id });
    expect(await notificationsOf(category)).toBe(2);
    expect(await deliveriesOf(category)).toBe(3);
  });

  it('keys are shared with the Idempotency-Key header of single posts, in both directions', async () => {
    const category = fresh();
    const body = { to: ['alice'], category, title: 'Hi' };
    // Header first, then the same key in a batch item.
    const k1 = `k-${randomUUID()}`;
    const single = await t.api('POST', '/v1/notifications', body, { 'idempotency-key': k1 });
    expect(single.status).toBe(202);
    const viaBatch = await batch([
      { ...body, idempotencyKey: k1 },
      { ...body, title: 'Other', idempotencyKey: k1 },
    ]);
    expect(viaBatch.json.results[0]).toEqual({ status: 202, id: single.json.id, recipients: 1 });
    expect(itemError(viaBatch.json.results[1], 'HERALD_ERR_IDEMPOTENCY_CONFLICT').details).toEqual({
      id: single.json.id,
    });

    // A batch item first, then the header.
    const k2 = `k-${randomUUID()}`;
    const first = await batch([{ ...body, idempotencyKey: k2 }]);
    const replay = await t.api('POST', '/v1/notifications', body, { 'idempotency-key': k2 });
    expect(replay.status).toBe(202);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.json.id).toBe(first.json.results[0].id);
    const other = await t.api('POST', '/v1/notifications', { ...body, title: 'x' }, { 'idempotency-key': k2 });
    expectError(other, 'HERALD_ERR_IDEMPOTENCY_CONFLICT');
    expect(await notificationsOf(category)).toBe(2);
  });

  it('one key twice in one batch: the first item owns it, the second replays or conflicts', async () => {
    const category = fresh();
    const key = `k-${randomUUID()}`;
    const item = { to: ['alice'], category, title: 'A', idempotencyKey: key };
    const r = await batch([item, item, { ...item, title: 'B' }]);
    const [a, b, c] = r.json.results;
    expect(a.status).toBe(202);
    expect(b).toEqual(a);
    expect(itemError(c, 'HERALD_ERR_IDEMPOTENCY_CONFLICT').details).toEqual({ id: a.id });
    expect(await notificationsOf(category)).toBe(1);
  });

  it('batches and single posts racing on one key: one notification, every same-body answer has its id', async () => {
    const category = fresh();
    const key = `k-${randomUUID()}`;
    const body = { to: ['alice'], category, title: 'race' };
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2
          ? t.api('POST', '/v1/notifications', body, { 'idempotency-key': key }).then((x) => x.json.id)
          : batch([{ ...body, idempotencyKey: key }]).then((x) => x.json.results[0].id),
      ),
    );
    expect(new Set(answers).size).toBe(1);
    expect(await notificationsOf(category)).toBe(1);
  });

  it('a topic item is accepted with recipients null and reaches every subscriber once, beside user items', async () => {
    const category = fresh();
    const topic = `t-${randomUUID().slice(0, 8)}`;
    const subscribers = Array.from({ length: 30 }, (_, i) => `sub-${i}`);
    expect((await t.api('PUT', `/v1/topics/${topic}/subscribers`, { userIds: subscribers })).status).toBe(200);
    const r = await batch([
      { to: ['alice'], category, title: 'direct' },
      { to: { topic }, category, title: 'to the topic' },
      { to: { topic: 'has space' }, category },
    ]);
    expect(r.status).toBe(200);
    const [direct, viaTopic, bad] = r.json.results;
    expect(direct).toEqual({ status: 202, id: expect.any(String), recipients: 1 });
    expect(viaTopic).toEqual({ status: 202, id: expect.any(String), recipients: null });
    expectNamesField(itemError(bad, 'HERALD_ERR_VALIDATION'), 'to');
    const done = await eventually(async () => {
      const v = (await t.api('GET', `/v1/notifications/${viaTopic.id}`)).json;
      return v.timeline?.some((e: { event: string }) => e.event === 'fanout_done') ? v : null;
    }, 'the fan-out to finish');
    expect(done.recipients).toBe(30);
    const rows = await (t.herald.adapters.store as SqlStore).sql.query<{ user_id: string; n: number }>(
      'SELECT user_id, count(*)::int AS n FROM inbox WHERE notification_id = $1 GROUP BY user_id',
      [viaTopic.id],
    );
    expect(rows.map((x) => x.user_id).sort()).toEqual([...subscribers].sort());
    expect(rows.every((x) => x.n === 1)).toBe(true);
  });

  it('refuses the whole request, storing nothing, when the envelope is wrong or holds more than 1,000 items', async () => {
    const category = fresh();
    const one = { to: ['alice'], category };
    const tooMany = await batch(Array.from({ length: 1_001 }, () => one));
    expectNamesField(expectError(tooMany, 'HERALD_ERR_VALIDATION'), 'notifications');
    expectNamesField(expectError(await batch([]), 'HERALD_ERR_VALIDATION'), 'notifications');
    expectNamesField(expectError(await batch(one), 'HERALD_ERR_VALIDATION'), 'notifications');
    for (const body of [[one], { items: [one] }, { notifications: [one], extra: 1 }]) {
      expectError(await t.api('POST', '/v1/notifications/batch', body), 'HERALD_ERR_VALIDATION');
    }
    expectError(await t.api('POST', '/v1/notifications/batch'), 'HERALD_ERR_VALIDATION');
    expect(await notificationsOf(category)).toBe(0);

    // Exactly 1,000 is fine.
    const full = await batch(Array.from({ length: 1_000 }, (_, i) => ({ to: [`u-${i}`], category })));
    expect(full.status).toBe(200);
    expect(full.json.results.every((x: any) => x.status === 202)).toBe(true);
    expect(await notificationsOf(category)).toBe(1_000);
  });

  it('takes bodies beyond HERALD_MAX_BODY_BYTES: 5 items × 10,000 recipients (~1.4 MB)', async () => {
    const category = fresh();
    const to = Array.from({ length: 10_000 }, (_, i) => `recipient-${String(i).padStart(12, '0')}`);
    const items = Array.from({ length: 5 }, (_, i) => ({ to, category, title: `big ${i}` }));
    expect(JSON.stringify({ notifications: items }).length).toBeGreaterThan(1_048_576);
    const r = await batch(items);
    expect(r.status, JSON.stringify(r.json).slice(0, 300)).toBe(200);
    expect(r.json.results.map((x: any) => x.recipients)).toEqual([10_000, 10_000, 10_000, 10_000, 10_000]);
    expect(await deliveriesOf(category)).toBe(50_000);
  });

  it('commits a 1,000-item batch in one group commit (one transaction)', async () => {
    const category = fresh();
    const commits: number[] = [];
    const onCommit = (e: { notifications: number }) => commits.push(e.notifications);
    t.herald.events.on('ingest:commit', onCommit);
    try {
      const r = await batch(Array.from({ length: 1_000 }, (_, i) => ({ to: [`u-${i}`], category })));
      expect(r.status).toBe(200);
    } finally {
      t.herald.events.off('ingest:commit', onCommit);
    }
    expect(commits).toEqual([1_000]);
  });
});

describe('POST /v1/notifications/batch body limit', () => {
  it('answers 413 above HERALD_MAX_BATCH_BODY_BYTES, and stores nothing', async () => {
    const t = await startTestHerald({ env: { HERALD_MAX_BATCH_BODY_BYTES: '4096' } });
    try {
      const items = Array.from({ length: 100 }, (_, i) => ({ to: [`u-${i}`], category: 'batch.limit', title: 'x' }));
      expectError(
        await t.api('POST', '/v1/notifications/batch', { notifications: items }),
        'HERALD_ERR_BODY_TOO_LARGE',
      );
      const small = await t.api('POST', '/v1/notifications/batch', { notifications: items.slice(0, 10) });
      expect(small.status).toBe(200);
    } finally {
      await t.stop();
    }
  });
});
