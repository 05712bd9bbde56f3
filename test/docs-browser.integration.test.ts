/**
 * /docs in a real browser (Debian's Chromium, driven by playwright-core): Swagger UI renders every
 * operation and the webhook, shows no error box (it used to show a resolver error for an undefined
 * `__schema0`) and logs no console error, offers both security schemes, and the example request
 * it shows is the real one, not a string generated from a regular expression. Fails — never skips —
 * when Chromium is missing (`apt-get install -y chromium`).
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/chromium.ts';
import { startTestHerald, type TestHerald } from './support/herald.ts';

describe('/docs (Swagger UI) in Chromium', () => {
  let t: TestHerald;
  let browser: Browser;
  let page: Page;
  let operationCount = 0;
  const consoleErrors: string[] = [];
  const offsite: string[] = [];

  beforeAll(async () => {
    t = await startTestHerald({ roles: ['api'] });
    const doc = (await t.api('GET', '/openapi.json')).json;
    for (const where of [doc.paths, doc.webhooks ?? {}]) {
      for (const item of Object.values(where as Record<string, object>)) operationCount += Object.keys(item).length;
    }
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    // The UI must be self-contained: anything it asks of another host is recorded and refused.
    const origin = new URL(t.url).origin;
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
      offsite.push(url);
      return route.abort();
    });
    await page.goto(`${t.url}/docs`);
    await page.waitForFunction((n) => document.querySelectorAll('.swagger-ui .opblock').length >= n, operationCount, {
      timeout: 45_000,
    });
  });

  afterAll(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('renders every operation and the webhook, with no error box and no console error', async () => {
    // Swagger UI resolves an operation's schemas when it is opened: open every one, then look.
    const summaries = page.locator('.swagger-ui .opblock .opblock-summary');
    for (let i = 0; i < operationCount; i++) await summaries.nth(i).click();
    await page.waitForFunction(
      (n) => document.querySelectorAll('.swagger-ui .opblock.is-open').length >= n,
      operationCount,
    );
    await page.waitForTimeout(1000);
    expect(await page.locator('.swagger-ui .errors-wrapper').count()).toBe(0);
    expect(await page.locator('body').textContent()).not.toMatch(/Resolver error|Could not resolve/i);
    expect(consoleErrors).toEqual([]);
    expect(offsite).toEqual([]);
    expect(operationCount).toBeGreaterThanOrEqual(16);
    expect(await page.locator('.swagger-ui .opblock').count()).toBe(operationCount);
    expect(await page.locator('.swagger-ui .opblock-summary-path[data-path="/v1/notifications"]').count()).toBe(1);
    await expect.poll(() => page.locator('body').textContent()).toContain('Webhooks');
  }, 120_000);

  it('shows the real example request, not one generated from a pattern', async () => {
    const send = page.locator('.swagger-ui .opblock-post').filter({
      has: page.locator('.opblock-summary-path[data-path="/v1/notifications"]'),
    });
    if (!(await send.evaluate((el) => el.classList.contains('is-open'))))
      await send.locator('.opblock-summary').click();
    const example = send.locator('.opblock-body .body-param__example, .opblock-body .microlight').first();
    await expect.poll(() => example.textContent(), { timeout: 10_000 }).toContain('"comment.reply"');
    const text = await example.textContent();
    expect(text).toContain('"alice"');
    expect(text).not.toMatch(/\$|\\\\/);
    expect(await page.locator('.swagger-ui .errors-wrapper').count()).toBe(0);
  });

  it('offers the producer API key and the user token', async () => {
    await page.locator('.swagger-ui .auth-wrapper .authorize').click();
    const dialog = page.locator('.swagger-ui .dialog-ux .modal-ux');
    await expect.poll(() => dialog.textContent(), { timeout: 10_000 }).toContain('apiKey');
    const text = await dialog.textContent();
    expect(text).toContain('userToken');
    expect(text).toContain('realtimeToken');
    expect(consoleErrors).toEqual([]);
  });
});
