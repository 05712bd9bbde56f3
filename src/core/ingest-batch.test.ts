import { describe, expect, it } from 'vitest';
import { HeraldError } from './errors.ts';
import { HeraldEmitter } from './events.ts';
import { hashRequest, Ingest } from './ingest.ts';
import type { NotificationStore } from './ports.ts';
import type { Bus } from './ports-bus.ts';
import type { AcceptOutcome, NewNotification, NotificationRequest } from './types.ts';

const request = (title: string): NotificationRequest => ({
  to: ['alice'],
  category: 'batch.test',
  priority: 'normal',
  channels: ['in_app'],
  title,
  body: null,
  data: null,
  sendAt: null,
  groupKey: null,
});

/** A store whose accept calls are recorded, and which fails while `failing` is set. */
function fakeStore() {
  const calls: NewNotification[][] = [];
  const state = { failing: false };
  const store = {
    async accept(batch: readonly NewNotification[]): Promise<AcceptOutcome[]> {
      calls.push([...batch]);
      if (state.failing) throw new Error('connection refused');
      return batch.map((n) => ({
        kind: 'accepted',
        answer: { id: n.id, status: 'accepted', recipients: n.to.length },
        jobs: [],
        delivered: [],
      }));
    },
  } as unknown as NotificationStore;
  return { store, calls, state };
}

const bus = { publish: async () => {} } as unknown as Bus;
const log = { warn() {} };

describe('Ingest.submitAll (a batch)', () => {
  it('hands every item of a batch to one accept call, and answers each in order', async () => {
    const { store, calls } = fakeStore();
    const ingest = new Ingest(store, bus, new HeraldEmitter(), log, { maxPending: 10_000, parallel: 2, maxBatch: 100 });
    const items = Array.from({ length: 250 }, (_, i) => ({ request: request(`n${i}`), idempotencyKey: null }));
    const out = await ingest.submitAll(items);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.map((n) => n.title)).toEqual(items.map((it) => it.request.title));
    expect(out.map((o) => (o.kind === 'accepted' ? o.answer.id : null))).toEqual(calls[0]?.map((n) => n.id));
  });

  it('hashes an item key as the header would be hashed', async () => {
    const { store, calls } = fakeStore();
    const ingest = new Ingest(store, bus, new HeraldEmitter(), log, { maxPending: 10, parallel: 1 });
    await ingest.submitAll([{ request: request('a'), idempotencyKey: 'k1' }]);
    await ingest.submit(request('a'), 'k2');
    expect(calls[0]?.[0]?.requestHash).toBe(hashRequest(request('a')));
    expect(calls[1]?.[0]?.requestHash).toBe(calls[0]?.[0]?.requestHash);
  });

  it('refuses the whole batch with HERALD_ERR_UNAVAILABLE when its commit fails', async () => {
    const { store, state } = fakeStore();
    state.failing = true;
    const ingest = new Ingest(store, bus, new HeraldEmitter(), log, { maxPending: 10, parallel: 1 });
    const items = [request('a'), request('b')].map((r) => ({ request: r, idempotencyKey: null }));
    const e = await ingest.submitAll(items).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HeraldError);
    expect((e as HeraldError).code).toBe('HERALD_ERR_UNAVAILABLE');
  });

  it('refuses the whole batch with HERALD_ERR_OVERLOADED when it does not fit among the waiting', async () => {
    const { store } = fakeStore();
    const ingest = new Ingest(store, bus, new HeraldEmitter(), log, { maxPending: 3, parallel: 1 });
    // One commit runs; two wait.
    const running = [ingest.submit(request('x'), null)];
    await new Promise((r) => setImmediate(r));
    running.push(ingest.submit(request('y'), null), ingest.submit(request('z'), null));
    const items = [request('a'), request('b')].map((r) => ({ request: r, idempotencyKey: null }));
    const e = await ingest.submitAll(items).catch((x: unknown) => x);
    expect((e as HeraldError).code).toBe('HERALD_ERR_OVERLOADED');
    expect((e as HeraldError).retryAfter).toBe(1);
    await Promise.all(running);
  });
});
