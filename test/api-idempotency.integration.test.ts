/**
 * Idempotency-Key on POST /v1/notifications, on both stores (PostgreSQL is where concurrent
 * requests really run in parallel transactions): the same key and body answer the first answer and
 * create nothing more; the same key with another body is 409; key order in the body does not matter.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/core/ids.ts';
import type { NewNotification } from '../src/core/types.ts';
import type { SqlStore } from '../src/store/store-sql.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';
import { expectError } from './support/http.ts';

describe.each(['pglite', 'postgres'] as const)('Idempotency-Key (%s)', (store) => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** Each test uses its own category, so rows can be counted per test. */
  const fresh = () => `idem.c${randomUUID().slice(0, 8)}`;
  const post = (body: unknown, key: string) => t.api('POST', '/v1/notifications', body, { 'idempotency-key': key });

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

  it('20 concurrent POSTs with one key and one body: all 202 with one id, one notification', async () => {
    const category = fresh();
    const body = { to: ['alice', 'bob'], category, title: 'Shipped', data: { orderId: 42 } };
    const key = `order-42-${randomUUID()}`;
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(body, key)));

    for (const a of answers) expect(a.status, JSON.stringify(a.json)).toBe(202);
    const ids = new Set(answers.map((a) => a.json.id));
    expect(ids.size).toBe(1);
    for (const a of answers) expect(a.json).toEqual({ id: [...ids][0], status: 'accepted', recipients: 2 });
    // One answer created it; the 19 others are marked as replays.
    const replayed = answers.filter((a) => a.headers.get('idempotent-replayed') === 'true');
    expect(replayed).toHaveLength(19);

    expect(await notificationsOf(category)).toBe(1);
    expect(await deliveriesOf(category)).toBe(2);
    expect(await count('SELECT count(*)::int AS n FROM idempotency_keys WHERE key = $1', [key])).toBe(1);
    const got = await t.api('GET', `/v1/notifications/${[...ids][0]}`);
    expect(got.status).toBe(200);
    expect(got.json.category).toBe(category);
  });

  it('the same key with another body is 409 HERALD_ERR_IDEMPOTENCY_CONFLICT and creates nothing', async () => {
    const category = fresh();
    const key = `k-${randomUUID()}`;
    const first = await post({ to: ['alice'], category, title: 'One' }, key);
    expect(first.status).toBe(202);

    for (const other of [
      { to: ['alice'], category, title: 'Two' },
      { to: ['alice', 'bob'], category, title: 'One' },
      { to: ['alice'], category, title: 'One', priority: 'high' },
      { to: ['alice'], category: `${category}.x`, title: 'One' },
    ]) {
      const res = await post(other, key);
      const error = expectError(res, 'HERALD_ERR_IDEMPOTENCY_CONFLICT');
      expect(error.details).toEqual({ id: first.json.id });
    }
    expect(await notificationsOf(category)).toBe(1);
    expect(await notificationsOf(`${category}.x`)).toBe(0);

    // The first body still replays after the conflicts.
    const again = await post({ to: ['alice'], category, title: 'One' }, key);
    expect(again.status).toBe(202);
    expect(again.json).toEqual(first.json);
  });

  it('key order and whitespace in the body do not matter: a reordered body is a replay', async () => {
    const category = fresh();
    const key = `k-${randomUUID()}`;
    const text = JSON.stringify({
      to: ['alice', 'bob'],
      category,
      priority: 'high',
      title: 'Hi',
      data: { a: 1, b: { c: [1, 2], d: 'x' } },
    });
    const reordered = `{ "data": {"b": {"d": "x", "c": [1, 2]}, "a": 1},
      "title": "Hi", "priority": "high", "category": "${category}", "to": ["alice", "bob"] }`;
    const first = await post(text, key);
    expect(first.status).toBe(202);
    const second = await post(reordered, key);
    expect(second.status, JSON.stringify(second.json)).toBe(202);
    expect(second.json).toEqual(first.json);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await notificationsOf(category)).toBe(1);

    // The order of recipients is part of the body, though: the first body is not that one.
    const swapped = await post(text.replace('["alice","bob"]', '["bob","alice"]'), key);
    expectError(swapped, 'HERALD_ERR_IDEMPOTENCY_CONFLICT');
  });

  it('concurrent requests with one key and two bodies: one notification, the other body all 409', async () => {
    const category = fresh();
    const key = `k-${randomUUID()}`;
    const a = { to: ['alice'], category, title: 'A' };
    const b = { to: ['alice'], category, title: 'B' };
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(i % 2 ? a : b, key)));

    const accepted = answers.filter((r) => r.status === 202);
    const refused = answers.filter((r) => r.status !== 202);
    for (const r of refused) expectError(r, 'HERALD_ERR_IDEMPOTENCY_CONFLICT');
    expect(new Set(accepted.map((r) => r.json.id)).size).toBe(1);
    expect(accepted).toHaveLength(10); // every request with the winning body, none with the other
    expect(await notificationsOf(category)).toBe(1);
    const winner = (await t.api('GET', `/v1/notifications/${accepted[0]?.json.id}`)).json;
    const winningBody = winner.title === 'A' ? a : b;
    answers.forEach((r, i) => {
      expect(r.status).toBe((i % 2 ? a : b) === winningBody ? 202 : 409);
    });
  });

  it('concurrent requests over several keys: one notification per key, every request answered 202', async () => {
    const category = fresh();
    const keys = Array.from({ length: 5 }, (_, i) => `multi-${i}-${randomUUID()}`);
    // Interleaved so that group-commit batches hold the keys in different orders.
    const order = Array.from({ length: 40 }, (_, i) => (i * 7 + Math.floor(i / 5)) % keys.length);
    const answers = await Promise.all(
      order.map((k) => post({ to: ['alice'], category, data: { k } }, keys[k] as string)),
    );
    for (const r of answers) expect(r.status, JSON.stringify(r.json)).toBe(202);
    for (let k = 0; k < keys.length; k++) {
      const ids = new Set(answers.filter((_, i) => order[i] === k).map((r) => r.json.id));
      expect(ids.size).toBe(1);
    }
    expect(new Set(answers.map((r) => r.json.id)).size).toBe(keys.length);
    expect(await notificationsOf(category)).toBe(keys.length);
  });

  it('commits that share keys in opposite orders all succeed: one notification per key, no deadlock', async () => {
    // Two Herald processes on one database group-commit independently, so one transaction may claim
    // keys [a, b] while another claims [b, a]. Driven through the store port: HTTP batching cannot
    // line that up on purpose.
    const category = fresh();
    const request = (key: string): NewNotification => ({
      id: uuidv7(),
      to: ['alice'],
      category,
      priority: 'normal',
      channels: ['in_app'],
      title: null,
      body: null,
      data: null,
      sendAt: null,
      groupKey: null,
      createdAt: new Date(),
      idempotencyKey: key,
      requestHash: 'same-body',
    });
    const rounds = 8;
    for (let round = 0; round < rounds; round++) {
      const keys = Array.from({ length: 6 }, (_, i) => `order-${round}-${i}-${randomUUID()}`);
      const batches = Array.from({ length: 6 }, (_, b) => {
        const rotated = [...keys.slice(b), ...keys.slice(0, b)];
        return (b % 2 ? rotated.reverse() : rotated).map(request);
      });
      const outs = await Promise.all(batches.map((batch) => t.herald.adapters.store.accept(batch)));
      for (const key of keys) {
        const mine = outs.flatMap((out, b) => out.filter((_, i) => batches[b]?.[i]?.idempotencyKey === key));
        expect(mine.filter((o) => o.kind === 'accepted')).toHaveLength(1);
        expect(mine.filter((o) => o.kind === 'replayed')).toHaveLength(batches.length - 1);
      }
    }
    expect(await notificationsOf(category)).toBe(rounds * 6);
  });

  it('without a key, the same body twice creates two notifications', async () => {
    const category = fresh();
    const body = { to: ['alice'], category };
    const [one, two] = [await t.api('POST', '/v1/notifications', body), await t.api('POST', '/v1/notifications', body)];
    expect(one.status).toBe(202);
    expect(two.status).toBe(202);
    expect(one.json.id).not.toBe(two.json.id);
    expect(await notificationsOf(category)).toBe(2);
  });
});
