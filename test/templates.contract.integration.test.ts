/** The TemplateStore contract, on every store adapter: put replaces whole, get, delete. */
import { expect, it } from 'vitest';
import type { Template } from '../src/core/template-render.ts';
import { forEachStore } from './support/databases.ts';

const TEMPLATE: Template = {
  defaultLocale: 'en',
  locales: {
    en: { title: '{{ data.actor }} replied', email: { subject: 'New reply', html: '<p>{{ data.excerpt }}</p>' } },
    'pt-BR': { title: 'Nova resposta', sms: { text: 'Olá — {{ data.actor }} ✓' } },
  },
};

forEachStore('TemplateStore', ({ store }) => {
  it('get of an absent category is null; delete of one is false', async () => {
    expect(await store().getTemplate('comment.reply')).toBeNull();
    expect(await store().deleteTemplate('comment.reply')).toBe(false);
  });

  it('put stores the template as sent; get gives it back; put again replaces it whole', async () => {
    const before = Date.now();
    const saved = await store().putTemplate('comment.reply', TEMPLATE);
    expect(saved).toEqual({ category: 'comment.reply', ...TEMPLATE, updatedAt: expect.any(Date) });
    expect(saved.updatedAt.getTime()).toBeGreaterThanOrEqual(before - 5_000);
    expect(await store().getTemplate('comment.reply')).toEqual(saved);

    const replacement: Template = { defaultLocale: 'de', locales: { de: { body: 'Neu' } } };
    await store().putTemplate('comment.reply', replacement);
    expect(await store().getTemplate('comment.reply')).toMatchObject({ ...replacement, category: 'comment.reply' });
    expect((await store().getTemplate('comment.reply'))?.locales).toEqual(replacement.locales);
  });

  it('categories are independent; delete removes one only', async () => {
    await store().putTemplate('a.one', TEMPLATE);
    await store().putTemplate('a.two', TEMPLATE);
    expect(await store().deleteTemplate('a.one')).toBe(true);
    expect(await store().getTemplate('a.one')).toBeNull();
    expect(await store().getTemplate('a.two')).toMatchObject(TEMPLATE);
    expect(await store().deleteTemplate('a.one')).toBe(false);
  });
});
