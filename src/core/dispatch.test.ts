import { describe, expect, it } from 'vitest';
import { type ChannelRoute, type ContentRenderer, Dispatcher } from './dispatch.ts';
import type { SendResult } from './ports-channels.ts';
import type { Channel, DeliveryContent, DeliveryJob } from './types.ts';

function job(channel: Channel, over: Partial<DeliveryJob['notification']> = {}): DeliveryJob {
  return {
    deliveryId: 'd1',
    leaseToken: 't1',
    attempt: 1,
    channel,
    lane: 'normal',
    userId: 'u1',
    notification: {
      id: 'n1',
      category: 'c',
      priority: 'normal',
      title: 'Own title',
      body: 'Own body',
      data: null,
      groupKey: null,
      createdAt: new Date(),
      ...over,
    },
    user: null,
  };
}

/** A route that records what it was asked to send and answers `answer`. */
function route(answer: SendResult = { ok: true, detail: { provider: 'x' } }) {
  const sent: DeliveryJob[] = [];
  const r: ChannelRoute & { sent: DeliveryJob[] } = {
    sent,
    async send(j) {
      sent.push(j);
      return answer;
    },
  };
  return r;
}

const renderingAs = (content: DeliveryContent | undefined): ContentRenderer => ({
  async render(j) {
    return content ? { ...j, content } : j;
  },
});

describe('Dispatcher', () => {
  it('sends the rendered job through the channel route', async () => {
    const email = route();
    const content = { title: 'T', body: 'B', email: { subject: 'S', html: '<p>B</p>', text: 'B' } };
    const d = new Dispatcher(new Map([['email', email]]), [], renderingAs(content));
    expect(await d.send(job('email'))).toEqual({ ok: true, detail: { provider: 'x' } });
    expect(email.sent[0]?.content).toEqual(content);
  });

  it('skips a channel without a route, in_app excepted', async () => {
    const d = new Dispatcher(new Map(), [], null);
    expect(await d.send(job('sms'))).toMatchObject({ ok: false, reason: 'no_provider' });
    expect(await d.send(job('in_app'))).toEqual({ ok: true, inbox: { title: null, body: null } });
  });

  it('answers an in-app delivery with its rendered text for the inbox', async () => {
    const d = new Dispatcher(new Map(), [], renderingAs({ title: 'Ada hat geantwortet', body: 'DE' }));
    expect(await d.send(job('in_app'))).toEqual({ ok: true, inbox: { title: 'Ada hat geantwortet', body: 'DE' } });
  });

  it('a gate that ends the delivery ends it before rendering, in-app included', async () => {
    let rendered = 0;
    const gate = { name: 'no', check: async () => ({ ok: false as const, skipped: 'opted out', reason: 'opted_out' }) };
    const d = new Dispatcher(new Map(), [gate], {
      async render(j) {
        rendered++;
        return j;
      },
    });
    expect(await d.send(job('in_app'))).toMatchObject({ skipped: 'opted out' });
    expect(rendered).toBe(0);
  });

  it('records a template error in the sent detail when the delivery fell back to its own text', async () => {
    const failed = { title: 'Own title', body: 'Own body', templateError: 'locales.en.body: limit exceeded' };
    const email = route();
    const d = new Dispatcher(new Map([['email', email]]), [], renderingAs(failed));
    expect(await d.send(job('email'))).toEqual({
      ok: true,
      detail: { provider: 'x', templateError: 'locales.en.body: limit exceeded' },
    });
    expect(await d.send(job('in_app'))).toEqual({
      ok: true,
      inbox: { title: 'Own title', body: 'Own body' },
      detail: { templateError: 'locales.en.body: limit exceeded' },
    });
  });

  it('fails permanently when a template error leaves nothing to send', async () => {
    const email = route();
    const nothing = { title: null, body: null, templateError: 'locales.en.title: too long' };
    const d = new Dispatcher(new Map([['email', email]]), [], renderingAs(nothing));
    const out = await d.send(job('email', { title: null, body: null }));
    expect(out).toEqual({ ok: false, permanent: true, error: 'template error: locales.en.title: too long' });
    expect(email.sent).toEqual([]);
  });
});
