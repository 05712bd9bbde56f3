/**
 * Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document (which must
 * describe every v1 route) and its UI, unknown routes, and the dead-letter routes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { expectError, rawRequest } from './support/http.ts';
import { startReceiver } from './support/receiver.ts';

/** Every v1 route of the contract, as OpenAPI paths, with the methods each must document. */
const V1_ROUTES: Record<string, string[]> = {
  '/v1/notifications': ['post'],
  '/v1/notifications/{id}': ['get'],
  '/v1/notifications/{id}/cancel': ['post'],
  '/v1/users/{userId}': ['put', 'get'],
  '/v1/users/{userId}/tokens': ['post'],
  '/v1/users/{userId}/inbox': ['get'],
  '/v1/users/{userId}/inbox/read': ['post'],
  '/v1/dead-letters': ['get'],
  '/v1/dead-letters/{id}/replay': ['post'],
  '/v1/templates/{category}': ['put', 'get', 'delete'],
  '/v1/templates/{category}/preview': ['post'],
  '/v1/users/{userId}/preferences': ['put', 'get'],
  '/v1/unsubscribe': ['get', 'post'],
  '/v1/providers': ['get'],
};

describe('operations', () => {
  let t: TestHerald;
  beforeAll(async () => {
    t = await startTestHerald({ store: 'pglite' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('GET /healthz and /readyz → 200 without credentials', async () => {
    const health = await rawRequest(t.url, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.json).toMatchObject({ status: 'ok' });
    const ready = await rawRequest(t.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ status: 'ok' });
  });

  it('GET /metrics is Prometheus text that counts accepted notifications', async () => {
    const before = await rawRequest(t.url, 'GET', '/metrics');
    expect(before.status).toBe(200);
    expect(before.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(before.text).toContain('# TYPE herald_notifications_accepted_total counter');

    const post = await t.api('POST', '/v1/notifications', { to: ['ops'], category: 'ops.check', priority: 'high' });
    expect(post.status).toBe(202);
    const after = await rawRequest(t.url, 'GET', '/metrics');
    expect(after.text).toMatch(/^herald_notifications_accepted_total\{lane="high"\} 1$/m);
    // Every sample line is "name{labels} value".
    for (const line of after.text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eEa-zA-Z]+$/);
    }
  });

  it('GET /openapi.json is an OpenAPI 3 document describing every v1 route', async () => {
    const res = await rawRequest(t.url, 'GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const doc = res.json;
    expect(String(doc.openapi)).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    for (const [path, methods] of Object.entries(V1_ROUTES)) {
      expect(Object.keys(doc.paths), path).toContain(path);
      for (const m of methods) expect(doc.paths[path], `${m} ${path}`).toHaveProperty(m);
    }
    // The documented request body of POST /v1/notifications names the contract's fields.
    const send = doc.paths['/v1/notifications'].post;
    const schema = send.requestBody.content['application/json'].schema;
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['to', 'category', 'priority', 'channels', 'title', 'body', 'data', 'sendAt', 'groupKey']),
    );
    expect(schema.required).toEqual(expect.arrayContaining(['to', 'category']));
    expect(Object.keys(send.responses)).toEqual(expect.arrayContaining(['202', '400', '401']));
  });

  it('GET /docs answers 200 with the OpenAPI UI (directly or after a redirect)', async () => {
    const first = await rawRequest(t.url, 'GET', '/docs', { redirect: 'manual' });
    let page = first;
    if (first.status >= 300 && first.status < 400) {
      const location = first.headers.get('location');
      expect(location).toBeTruthy();
      page = await rawRequest(t.url, 'GET', new URL(location as string, `${t.url}/docs`).pathname);
    }
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.text.toLowerCase()).toContain('swagger');
  });

  it('an unknown route → 404 HERALD_ERR_NOT_FOUND, with or without credentials', async () => {
    expectError(await rawRequest(t.url, 'GET', '/v2/notifications'), 'HERALD_ERR_NOT_FOUND');
    expectError(await t.api('GET', '/v1/nothing-here'), 'HERALD_ERR_NOT_FOUND');
    expectError(await t.api('POST', '/v1/users/alice/inbox/unread', { all: true }), 'HERALD_ERR_NOT_FOUND');
  });

  it('a known path asked with another method → 405 HERALD_ERR_METHOD_NOT_ALLOWED with an Allow header', async () => {
    const del = await t.api('DELETE', '/v1/notifications');
    expectError(del, 'HERALD_ERR_METHOD_NOT_ALLOWED');
    expect(del.headers.get('allow')).toBe('POST');
    const post = await t.api('POST', '/v1/users/alice');
    expectError(post, 'HERALD_ERR_METHOD_NOT_ALLOWED');
    expect(post.headers.get('allow')?.split(', ').sort()).toEqual(['GET', 'HEAD', 'PUT']);
    // A path that only looks like a route is still unknown.
    expectError(await t.api('DELETE', '/v1/users/alice/inbox/read/more'), 'HERALD_ERR_NOT_FOUND');
  });

  it('providers: each channel’s providers with their breaker, for the API key only', async () => {
    expectError(await rawRequest(t.url, 'GET', '/v1/providers'), 'HERALD_ERR_UNAUTHORIZED');
    const r = await t.api('GET', '/v1/providers');
    expect(r.status).toBe(200);
    // A test Herald configures no email, SMS or push provider: webhook and chat, without breakers.
    expect(r.json.items.map((p: { name: string; channel: string }) => `${p.channel}:${p.name}`).sort()).toEqual([
      'chat:chat',
      'webhook:webhook',
    ]);
    expect(r.json.items.every((p: { circuit: unknown; order: number }) => p.circuit === null && p.order === 0)).toBe(
      true,
    );
  });

  it('dead letters: a failed delivery is listed and replayed; a sent or skipped one is not', async () => {
    expectError(await rawRequest(t.url, 'GET', '/v1/dead-letters'), 'HERALD_ERR_UNAUTHORIZED');
    // The receiver answers 410 until it recovers: that webhook delivery fails for good, the in_app one
    // is sent, and the sms one is skipped (no sms provider: nothing to send to, not a failure).
    let recovered = false;
    const receiver = await startReceiver(() => (recovered ? 200 : 410));
    try {
      expect((await t.api('PUT', '/v1/users/dl', { webhookUrl: receiver.url })).status).toBe(200);
      const post = await t.api('POST', '/v1/notifications', {
        to: ['dl'],
        category: 'dl.test',
        channels: ['in_app', 'webhook', 'sms'],
      });
      expect(post.status).toBe(202);
      const n = await eventually(async () => {
        const v = (await t.api('GET', `/v1/notifications/${post.json.id}`)).json;
        return v.status === 'partially_failed' ? v : null;
      }, 'partially_failed');
      const byChannel = (c: string) => n.deliveries.find((d: { channel: string }) => d.channel === c);
      const [failed, sent, skipped] = [byChannel('webhook'), byChannel('in_app'), byChannel('sms')];
      expect(failed).toMatchObject({ status: 'failed', lastError: expect.stringContaining('410') });
      expect(skipped).toMatchObject({ status: 'skipped', lastError: expect.stringMatching(/no provider.*sms/) });
      expect(n.timeline.map((e: { event: string }) => e.event)).toContain('skipped');

      const list = await t.api('GET', '/v1/dead-letters?limit=10');
      expect(list.status).toBe(200);
      expect(list.json.items).toEqual([
        expect.objectContaining({
          id: failed.id,
          notificationId: post.json.id,
          userId: 'dl',
          channel: 'webhook',
          status: 'failed',
        }),
      ]);
      expect(list.json.nextCursor).toBeNull();

      recovered = true;
      const replay = await t.api('POST', `/v1/dead-letters/${failed.id}/replay`);
      expect(replay.status).toBe(200);
      expect(replay.json).toEqual({ id: failed.id, status: 'pending' });
      // Replayed and sent: the notification is done (its skipped delivery is not a failure).
      await eventually(async () => {
        const v = (await t.api('GET', `/v1/notifications/${post.json.id}`)).json;
        return v.status === 'done' ? v : null;
      }, 'done after replay');
      expect(receiver.received.map((r) => r.json?.deliveryId)).toEqual([failed.id, failed.id]);
      expectError(await t.api('POST', `/v1/dead-letters/${sent.id}/replay`), 'HERALD_ERR_NOT_REPLAYABLE');
      expectError(await t.api('POST', `/v1/dead-letters/${skipped.id}/replay`), 'HERALD_ERR_NOT_REPLAYABLE');
      expectError(
        await t.api('POST', '/v1/dead-letters/01936f8e-0000-7000-8000-000000000000/replay'),
        'HERALD_ERR_NOT_FOUND',
      );
      expectError(await t.api('POST', '/v1/dead-letters/not-a-uuid/replay'), 'HERALD_ERR_NOT_FOUND');
    } finally {
      await receiver.close();
    }
  });

  it('a dead-letter cursor that Herald did not issue is never a 500', async () => {
    const cursor = (parts: unknown) => Buffer.from(JSON.stringify(parts)).toString('base64url');
    const id = '01936f8e-0000-7000-8000-000000000000';
    for (const c of [
      'garbage',
      cursor(['not-a-date', id]),
      cursor(['2026-13-45T99:00:00.000000Z', id]),
      cursor(['0000-01-01T00:00:00.000000Z', id]),
      cursor(['2026-01-01T00:00:00.000000Z', 'not-a-uuid']),
      cursor([1, 2]),
      cursor({ at: 1 }),
    ]) {
      const res = await t.api('GET', `/v1/dead-letters?cursor=${encodeURIComponent(c)}`);
      expect(res.status, `${c}: ${JSON.stringify(res.json)}`).toBeLessThan(500);
      if (res.status !== 200) expectError(res, 'HERALD_ERR_VALIDATION');
    }
  });
});
