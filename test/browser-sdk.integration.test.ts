/**
 * The client SDK in a real browser (Debian's Chromium, driven by playwright-core): a page served
 * from another origin bundles @herald/client, connects to Herald over a WebSocket, receives live
 * notifications, reads its inbox over HTTP (CORS), marks read, and resumes without a gap after its
 * connection drops. Fails — never skips — when Chromium is missing (`apt-get install -y chromium`).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/chromium.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

const PAGE = `<!doctype html><meta charset="utf-8"><title>herald sdk</title><script src="/sdk.js"></script>
<script>
  const params = new URLSearchParams(location.hash.slice(1));
  window.received = [];
  window.unread = [];
  window.states = [];
  const client = new HeraldSDK.HeraldClient({ url: params.get('url'), token: params.get('token'), reconnect: { baseMs: 100, maxMs: 500 } });
  client.on('notification', (n) => window.received.push(n));
  client.on('unread', (c) => window.unread.push(c));
  client.on('connection', (s) => window.states.push(s.status));
  window.client = client;
  client.connect();
</script>`;

describe('@herald/client in Chromium', () => {
  let t: TestHerald;
  let site: Server;
  let siteUrl: string;
  let browser: Browser;
  let page: Page;
  const user = 'browser-user';

  beforeAll(async () => {
    t = await startTestHerald();
    const bundle = await build({
      entryPoints: ['packages/client/src/index.ts'],
      bundle: true,
      format: 'iife',
      globalName: 'HeraldSDK',
      platform: 'browser',
      target: 'es2022',
      write: false,
    });
    const sdk = bundle.outputFiles[0]?.text ?? '';
    site = createServer((req, res) => {
      if (req.url === '/sdk.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(sdk);
      else res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
    browser = await launchChromium();
    page = await browser.newPage();
    const { json } = await t.api('POST', `/v1/users/${user}/tokens`);
    await page.goto(`${siteUrl}#url=${encodeURIComponent(t.url)}&token=${encodeURIComponent(json.token)}`);
    await page.waitForFunction(() => (window as any).states.includes('open'), null, { timeout: 15_000 });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => site?.close(r));
    await t?.stop();
  });

  const post = async (title: string) => {
    const r = await t.api('POST', '/v1/notifications', { to: [user], category: 'browser.test', title });
    expect(r.status).toBe(202);
    return r.json.id as string;
  };
  const received = () =>
    page.evaluate(() => (window as any).received.map((n: any) => ({ seq: n.seq, title: n.title })));

  it('receives a notification live, and it is acknowledged as delivered', async () => {
    const id = await post('live one');
    await page.waitForFunction(() => (window as any).received.length === 1, null, { timeout: 15_000 });
    expect(await received()).toEqual([{ seq: 1, title: 'live one' }]);
    await eventually(async () => {
      const r = await t.api('GET', `/v1/notifications/${id}`);
      return r.json.deliveries[0].status === 'delivered';
    }, 'the browser ack to mark the delivery delivered');
  });

  it('reads the inbox over HTTP from another origin (CORS) and keeps the unread count in sync', async () => {
    const page1 = await page.evaluate(() => (window as any).client.inbox.list({ limit: 10 }));
    expect(page1.items.map((i: any) => i.title)).toEqual(['live one']);
    expect(page1.unreadCount).toBe(1);
    await page.evaluate(() => (window as any).client.markRead(1));
    await page.waitForFunction(() => (window as any).unread.at(-1) === 0, null, { timeout: 15_000 });
  });

  it('resumes after its connection drops: what was sent meanwhile arrives once, in order', async () => {
    await page.evaluate(() => (window as any).client.dropConnectionForTest({ reconnectAfterMs: 1500 }));
    for (let i = 0; i < 5; i++) await post(`missed ${i}`);
    await page.waitForFunction(() => (window as any).received.length === 6, null, { timeout: 20_000 });
    await post('after');
    await page.waitForFunction(() => (window as any).received.length === 7, null, { timeout: 15_000 });
    const seqs = (await received()).map((n: { seq: number }) => n.seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});
