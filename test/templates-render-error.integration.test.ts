/**
 * A template that fails to render at delivery (here: a loop over the render time bound), on both
 * stores: the delivery is not lost. With text of its own the notification is sent with it — the
 * inbox item and the webhook body show the notification's title and body, and each `sent` event
 * says which field failed — and without any it fails without retry, naming the field, with no
 * inbox entry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { type Receiver, startReceiver } from './support/receiver.ts';

const BOMB = '{% for i in (1..100000000) %}x{% endfor %}';

describe.each(['pglite', 'postgres'] as const)('a template that fails to render at delivery (%s)', (store) => {
  let t: TestHerald;
  let hooks: Receiver;
  let n = 0;

  beforeAll(async () => {
    hooks = await startReceiver();
    t = await startTestHerald({ store, env: { HERALD_RETRY_BASE_MS: '100', HERALD_RETRY_MAX_ATTEMPTS: '3' } });
    const put = await t.api('PUT', '/v1/templates/broken.body', {
      defaultLocale: 'en',
      locales: { en: { title: 'Templated {{ data.n }}', body: BOMB } },
    });
    expect(put.status, JSON.stringify(put.json)).toBe(200);
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
    await hooks?.close();
  });

  async function user(): Promise<string> {
    const id = `broken-${store}-${++n}`;
    expect((await t.api('PUT', `/v1/users/${id}`, { locale: 'en', webhookUrl: `${hooks.url}/${id}` })).status).toBe(
      200,
    );
    return id;
  }

  async function settle(body: Record<string, unknown>) {
    const r = await t.api('POST', '/v1/notifications', {
      category: 'broken.body',
      channels: ['in_app', 'webhook'],
      ...body,
    });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    return eventually(
      async () => {
        const v = await t.api('GET', `/v1/notifications/${r.json.id}`);
        const done = v.json.deliveries.every((d: { status: string }) => !['pending', 'processing'].includes(d.status));
        return done ? v.json : null;
      },
      'the deliveries to settle',
      20_000,
    );
  }

  it("sends the notification's own text and records the failing field in each sent event", async () => {
    const id = await user();
    const v = await settle({ to: [id], title: 'Own title', body: 'Own body', data: { n: 1 } });
    expect(v.deliveries.map((d: { channel: string; status: string }) => [d.channel, d.status]).sort()).toEqual([
      ['in_app', 'sent'],
      ['webhook', 'sent'],
    ]);
    const sent = v.timeline.filter((e: { event: string }) => e.event === 'sent');
    expect(sent).toHaveLength(2);
    for (const e of sent) expect(e.detail.templateError).toMatch(/^locales\.en\.body: /);
    const inbox = await t.api('GET', `/v1/users/${id}/inbox`);
    expect(inbox.json.items.map((i: { title: string; body: string }) => [i.title, i.body])).toEqual([
      ['Own title', 'Own body'],
    ]);
    const got = hooks.received.filter((h) => h.json?.userId === id);
    expect(got.map((h) => [h.json.title, h.json.body])).toEqual([['Own title', 'Own body']]);
  }, 30_000);

  it('fails a delivery without text of its own permanently, naming the field, and writes no inbox entry', async () => {
    const id = await user();
    const v = await settle({ to: [id], data: { n: 2 } });
    for (const d of v.deliveries) {
      expect(d).toMatchObject({ status: 'failed', attempts: 1 });
      expect(d.lastError).toMatch(/^template error: locales\.en\.body: /);
    }
    expect((await t.api('GET', `/v1/users/${id}/inbox`)).json.items).toEqual([]);
    expect(hooks.received.filter((h) => h.json?.userId === id)).toEqual([]);
  }, 30_000);
});
