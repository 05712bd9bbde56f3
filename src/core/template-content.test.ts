/**
 * The delivery renderer: a job's content per user and channel, resolved field by field in the
 * documented order (user's locale: its channel section, then its title/body; then the default
 * locale, same order; then the notification's own), from the compiled cache; and what a failing
 * render leaves.
 */
import { describe, expect, it } from 'vitest';
import type { StoredTemplate, TemplateStore } from './ports.ts';
import { TemplateCache } from './template-cache.ts';
import { TemplateContentRenderer } from './template-content.ts';
import { render, type Template } from './template-render.ts';
import type { Channel, DeliveryJob, JobUser } from './types.ts';

const TEMPLATE: Template = {
  defaultLocale: 'en',
  locales: {
    en: {
      title: '{{ data.actor }} replied',
      body: '{{ data.excerpt }}',
      email: {
        subject: 'New reply from {{ data.actor }}',
        html: '<p>{{ data.excerpt }}</p>',
        text: 'EN {{ data.excerpt }}',
      },
      sms: { text: 'EN {{ data.actor }}: {{ data.excerpt }}' },
      push: { title: 'EN push {{ data.actor }}' },
    },
    de: {
      title: '{{ data.actor }} hat geantwortet',
      body: 'DE {{ data.excerpt }}',
      chat: { text: 'DE chat {{ data.actor }} ({{ user.timezone }})' },
    },
    es: { body: 'ES {{ data.excerpt }}' },
  },
};

function storeWith(templates: Record<string, Template>): TemplateStore & { reads: number } {
  const s = {
    reads: 0,
    async putTemplate(): Promise<StoredTemplate> {
      throw new Error('not here');
    },
    async getTemplate(category: string) {
      s.reads++;
      const t = templates[category];
      return t ? { category, ...t, updatedAt: new Date() } : null;
    },
    async deleteTemplate() {
      return false;
    },
  };
  return s;
}

function job(channel: Channel, locale: string | null | undefined, over: Partial<DeliveryJob['notification']> = {}) {
  const user: JobUser | null =
    locale === undefined
      ? null
      : { id: 'u1', email: null, phone: null, timezone: 'Europe/Berlin', locale, webhookUrl: null };
  return {
    deliveryId: 'd1',
    leaseToken: 't1',
    attempt: 1,
    channel,
    lane: 'normal',
    userId: 'u1',
    notification: {
      id: 'n1',
      category: 'comment.reply',
      priority: 'normal',
      title: 'Own title',
      body: 'Own body',
      data: { actor: 'Ada', excerpt: 'Looks <good>' },
      groupKey: null,
      createdAt: new Date(),
      ...over,
    },
    user,
  } satisfies DeliveryJob;
}

const renderer = (templates: Record<string, Template> = { 'comment.reply': TEMPLATE }) =>
  new TemplateContentRenderer(new TemplateCache(storeWith(templates)));

describe('TemplateContentRenderer', () => {
  it('a de user gets German wherever de has text: its section first, then its title/body, before the default locale', async () => {
    const r = renderer();
    const email = (await r.render(job('email', 'de'))).content;
    // de has no email section: its title and body come before en's email section.
    expect(email).toEqual({
      title: 'Ada hat geantwortet',
      body: 'DE Looks <good>',
      email: { subject: 'Ada hat geantwortet', html: 'DE Looks &lt;good&gt;', text: 'DE Looks <good>' },
    });
    expect((await r.render(job('sms', 'de'))).content?.sms).toEqual({ text: 'Ada hat geantwortet: DE Looks <good>' });
    expect((await r.render(job('push', 'de'))).content?.push).toEqual({
      title: 'Ada hat geantwortet',
      body: 'DE Looks <good>',
    });
    expect((await r.render(job('chat', 'de'))).content?.chat).toEqual({ text: 'DE chat Ada (Europe/Berlin)' });
    for (const channel of ['in_app', 'webhook'] as const) {
      expect((await r.render(job(channel, 'de'))).content).toEqual({
        title: 'Ada hat geantwortet',
        body: 'DE Looks <good>',
      });
    }
  });

  it('a regional locale uses its language (de-AT → de)', async () => {
    expect((await renderer().render(job('in_app', 'de-AT'))).content?.title).toBe('Ada hat geantwortet');
  });

  it('a user whose locale the template lacks, or with no locale or profile, gets the default locale', async () => {
    const r = renderer();
    for (const locale of ['fr', null, undefined]) {
      const email = (await r.render(job('email', locale))).content;
      expect(email).toEqual({
        title: 'Ada replied',
        body: 'Looks <good>',
        email: { subject: 'New reply from Ada', html: '<p>Looks &lt;good&gt;</p>', text: 'EN Looks <good>' },
      });
      expect((await r.render(job('sms', locale))).content?.sms).toEqual({ text: 'EN Ada: Looks <good>' });
      // push.body is absent in en's section: en's body.
      expect((await r.render(job('push', locale))).content?.push).toEqual({
        title: 'EN push Ada',
        body: 'Looks <good>',
      });
      // No chat section anywhere: title and body.
      expect((await r.render(job('chat', locale))).content?.chat).toEqual({ text: 'Ada replied: Looks <good>' });
    }
  });

  it('a locale with only some fields takes the others from the default locale', async () => {
    const r = renderer();
    const c = (await r.render(job('email', 'es'))).content;
    expect(c?.title).toBe('Ada replied');
    expect(c?.body).toBe('ES Looks <good>');
    // es has no email section and no title: en's email section before anything else.
    expect(c?.email?.subject).toBe('New reply from Ada');
  });

  it("falls back to the notification's own title/body for fields no locale has", async () => {
    const only = { defaultLocale: 'en', locales: { en: { body: 'Templated {{ data.actor }}' } } };
    const c = (await renderer({ 'comment.reply': only }).render(job('webhook', 'de'))).content;
    expect(c).toEqual({ title: 'Own title', body: 'Templated Ada' });
  });

  it('renders from the compiled template exactly what an uncompiled render gives', async () => {
    const r = renderer();
    for (const channel of ['in_app', 'email', 'sms', 'push', 'chat', 'webhook'] as const) {
      for (const locale of ['de', 'fr', 'es']) {
        const j = job(channel, locale);
        const direct = await render(TEMPLATE, {
          locale,
          channel,
          data: { actor: 'Ada', excerpt: 'Looks <good>' },
          user: { id: 'u1', locale, timezone: 'Europe/Berlin' },
          notification: {
            id: 'n1',
            category: 'comment.reply',
            priority: 'normal',
            title: 'Own title',
            body: 'Own body',
          },
        });
        expect((await r.render(j)).content).toEqual(direct);
      }
    }
  });

  it('leaves a job of a category without a template as it is, reading the store once for it', async () => {
    const store = storeWith({});
    const r = new TemplateContentRenderer(new TemplateCache(store));
    const j = job('email', 'de');
    for (let i = 0; i < 3; i++) expect(await r.render(j)).toBe(j);
    expect(store.reads).toBe(1);
  });

  it("a render over a limit falls back to the notification's own text, saying which field failed", async () => {
    const slow = {
      defaultLocale: 'en',
      locales: { en: { title: 'ok', body: '{% for i in (1..100000000) %}x{% endfor %}' } },
    };
    const started = Date.now();
    const c = (await renderer({ 'comment.reply': slow }).render(job('email', 'en'))).content;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(c?.title).toBe('Own title');
    expect(c?.body).toBe('Own body');
    expect(c?.email).toBeUndefined();
    expect(c?.templateError).toMatch(/^locales\.en\.body: /);
  });
});
