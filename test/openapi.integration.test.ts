/**
 * /openapi.json is a valid OpenAPI 3.1 document that tells the truth: every `$ref` resolves, every
 * operation documents its success answer, each operation's security matches what the server
 * accepts, every status the server answers an example request with is documented, real answers
 * (and a real webhook) have exactly the documented shapes, and every example is a value the server
 * would send or accept.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETENTION_SHAPE } from '../src/api/openapi-retention.ts';
import { SHAPES } from '../src/api/openapi-shapes.ts';
import { BATCH_SHAPES } from '../src/api/openapi-shapes-batch.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';
import { startReceiver } from './support/receiver.ts';

type Json = Record<string, any>;
interface Operation {
  method: string;
  path: string;
  op: Json;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

function operations(doc: Json, where: 'paths' | 'webhooks'): Operation[] {
  return Object.entries((doc[where] ?? {}) as Record<string, Json>).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => ({ method, path, op: item[method] })),
  );
}

/** Every `$ref` in the document, with where it is. */
function refs(node: unknown, at = '#'): { at: string; ref: string }[] {
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([k, v]) =>
    k === '$ref' && typeof v === 'string' ? [{ at, ref: v }] : refs(v, `${at}/${k}`),
  );
}

function resolvePointer(doc: Json, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: any = doc;
  for (const part of ref.slice(2).split('/')) {
    node = node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return node;
}

describe('the OpenAPI document', () => {
  let t: TestHerald;
  let doc: Json;

  beforeAll(async () => {
    // The api role only: the example requests below must not make a worker call example.com.
    t = await startTestHerald({ roles: ['api'] });
    const r = await fetch(`${t.url}/openapi.json`);
    expect(r.status).toBe(200);
    doc = (await r.json()) as Json;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('has no unresolved $ref (the UI used to fail on __schema0)', () => {
    const unresolved = refs(doc).filter(({ ref }) => resolvePointer(doc, ref) === undefined);
    expect(unresolved).toEqual([]);
    expect(JSON.stringify(doc)).not.toMatch(/__schema\d|"\$defs"|"definitions"/);
  });

  it('documents a success answer for every operation and the webhook', () => {
    const ops = [...operations(doc, 'paths'), ...operations(doc, 'webhooks')];
    expect(ops.length).toBeGreaterThanOrEqual(16);
    const missing = ops
      .filter(({ path, op }) => {
        const codes = Object.keys(op.responses ?? {});
        // The WebSocket endpoint succeeds by switching protocols; nothing else may go without a 2xx.
        if (path === '/v1/realtime') return !codes.includes('101');
        return !codes.some((c) => /^2(\d\d|XX)$/.test(c));
      })
      .map(({ method, path }) => `${method.toUpperCase()} ${path}`);
    expect(missing).toEqual([]);
  });

  it('describes the outgoing webhook: its body and the Standard Webhooks headers', () => {
    const post = doc.webhooks?.notification?.post;
    expect(post).toBeDefined();
    expect(post.parameters.map((p: Json) => p.name)).toEqual(
      expect.arrayContaining(['webhook-id', 'webhook-timestamp', 'webhook-signature']),
    );
    const media = post.requestBody.content['application/json'];
    expect(Object.keys(media.schema.properties)).toEqual(Object.keys(SHAPES.webhook.example));
    expect(media.example).toEqual(SHAPES.webhook.example);
  });

  it('describes the outgoing chat message: text and blocks, as the chat channel sends them', () => {
    const post = doc.webhooks?.chatMessage?.post;
    expect(post).toBeDefined();
    const media = post.requestBody.content['application/json'];
    expect(Object.keys(media.schema.properties)).toEqual(['text', 'blocks']);
    expect(media.example).toEqual(SHAPES.chatMessage.example);
  });

  it('gives real examples, not values generated from regular expressions', () => {
    const send = doc.paths['/v1/notifications'].post;
    const example = send.requestBody.content['application/json'].example;
    expect(example.to).toEqual(['alice']);
    expect(example.category).toBe('comment.reply');
    for (const { method, path, op } of operations(doc, 'paths')) {
      for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
        const media = response.content?.['application/json'];
        if (!media) continue;
        const has = media.example !== undefined || media.examples !== undefined;
        expect(has, `${method.toUpperCase()} ${path} ${status} has an example`).toBe(true);
      }
    }
  });

  it("declares each operation's security as the server enforces it", async () => {
    const { json: token } = await t.api('POST', '/v1/users/alice/tokens');
    const checked: string[] = [];
    for (const { method, path, op } of operations(doc, 'paths')) {
      const security = (op.security ?? doc.security) as Json[];
      const schemes = security.flatMap((s) => Object.keys(s));
      if (path === '/v1/realtime') continue; // a WebSocket: see the realtime tests
      const url = path.replace('{userId}', 'alice').replace('{id}', '01a24ce0-002a-7000-8dde-a9b942d4282b');
      const body = op.requestBody?.content['application/json']?.example;
      const call = (authorization?: string) =>
        t.api(method.toUpperCase(), url, body, authorization ? { authorization } : { authorization: '' });
      const anonymous = await call();
      if (schemes.length === 0) {
        expect(anonymous.status, `${method} ${path} without credentials`).toBeLessThan(400);
        continue;
      }
      expect(anonymous.status, `${method} ${path} without credentials`).toBe(401);
      expect(Object.keys(op.responses)).toContain('401');
      const asUser = await call(`Bearer ${token.token}`);
      if (schemes.includes('userToken')) expect(asUser.status, `${method} ${path} as alice`).not.toBe(401);
      else expect(asUser.status, `${method} ${path} as alice`).toBe(401);
      checked.push(`${method} ${path}`);
    }
    expect(checked.length).toBeGreaterThanOrEqual(10);
  });

  it('documents every status the server answers the documented example requests with', async () => {
    const undocumented: string[] = [];
    for (const { method, path, op } of operations(doc, 'paths')) {
      const example = (p: Json) => p.example ?? p.schema?.examples?.[0];
      let url = path;
      for (const p of (op.parameters ?? []) as Json[]) {
        if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(String(example(p))));
      }
      const headers: Record<string, string> = {};
      for (const p of (op.parameters ?? []) as Json[]) {
        if (p.in === 'header' && example(p) !== undefined) headers[p.name] = String(example(p));
      }
      const body = op.requestBody?.content['application/json']?.example;
      const r = await t.api(method.toUpperCase(), url, body, headers);
      const codes = Object.keys(op.responses);
      if (!codes.includes(String(r.status))) undocumented.push(`${method.toUpperCase()} ${url} → ${r.status}`);
    }
    expect(undocumented).toEqual([]);
  });
});

describe('real answers have exactly the documented shapes', () => {
  it('for a notification that reached the inbox and ended as a dead webhook', async () => {
    const receiver = await startReceiver(() => 500);
    const t = await startTestHerald({
      env: { HERALD_EGRESS_ALLOW: '127.0.0.1/32', HERALD_RETRY_BASE_MS: '10', HERALD_RETRY_MAX_ATTEMPTS: '1' },
    });
    try {
      const shapes = { ...SHAPES, retention: RETENTION_SHAPE };
      const check = (shape: keyof typeof shapes, value: unknown) => {
        const r = shapes[shape].schema.safeParse(value);
        expect(r.success ? [] : r.error.issues, `${shape}: ${JSON.stringify(value)}`).toEqual([]);
      };
      check('health', (await t.api('GET', '/healthz')).json);
      check('ready', (await t.api('GET', '/readyz')).json);
      check('profile', (await t.api('PUT', '/v1/users/bob', { webhookUrl: receiver.url, timezone: 'UTC' })).json);
      check('profile', (await t.api('GET', '/v1/users/bob')).json);
      check('userToken', (await t.api('POST', '/v1/users/bob/tokens')).json);
      const sent = await t.api('POST', '/v1/notifications', {
        to: ['bob'],
        category: 'billing.invoice',
        channels: ['in_app', 'webhook'],
        title: 'Invoice ready',
        data: { invoice: 'INV-7', lines: [{ amount: 12.5 }] },
        groupKey: 'invoices',
      });
      expect(sent.status).toBe(202);
      check('accepted', sent.json);
      const dead = await eventually(async () => {
        const r = await t.api('GET', '/v1/dead-letters');
        return r.json.items.length === 1 ? r.json : null;
      }, 'the webhook delivery to be dead');
      check('deadLetters', dead);
      check('providers', (await t.api('GET', '/v1/providers')).json);
      check('notification', (await t.api('GET', `/v1/notifications/${sent.json.id}`)).json);
      check('inboxPage', (await t.api('GET', '/v1/users/bob/inbox')).json);
      check('unreadCount', (await t.api('POST', '/v1/users/bob/inbox/read', { all: true })).json);
      check('presence', (await t.api('GET', '/v1/users/bob/presence')).json);
      check('replayed', (await t.api('POST', `/v1/dead-letters/${dead.items[0].id}/replay`)).json);
      check('retention', (await t.api('POST', '/v1/maintenance/retention')).json);

      const hook = receiver.received[0];
      expect(hook?.signatureValid).toBe(true);
      check('webhook', hook?.json);
      const documented = doc(await t.api('GET', '/openapi.json')).webhooks.notification.post.parameters.map(
        (p: Json) => p.name,
      );
      for (const name of documented) expect(hook?.headers[name], `webhook header ${name}`).toBeTruthy();

      const later = await t.api('POST', '/v1/notifications', {
        to: ['bob'],
        category: 'billing.invoice',
        title: 'Later',
        sendAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
      check('accepted', later.json);

      // A batch: accepted, invalid, replayed and conflicting items in one answer.
      const items = [
        { to: ['bob'], category: 'billing.invoice', title: 'Batch', idempotencyKey: 'batch-shape-1' },
        { to: [], category: 'billing.invoice' },
        { to: ['bob'], category: 'billing.invoice', title: 'Batch', idempotencyKey: 'batch-shape-1' },
        { to: ['bob'], category: 'billing.invoice', title: 'Other', idempotencyKey: 'batch-shape-1' },
      ];
      const batch = await t.api('POST', '/v1/notifications/batch', { notifications: items });
      expect(batch.status).toBe(200);
      expect(batch.json.results.map((x: Json) => x.status)).toEqual([202, 400, 202, 409]);
      const r = BATCH_SHAPES.batchResults.schema.safeParse(batch.json);
      expect(r.success ? [] : r.error.issues, JSON.stringify(batch.json)).toEqual([]);
      check('cancelled', (await t.api('POST', `/v1/notifications/${later.json.id}/cancel`)).json);
    } finally {
      await t.stop();
      await receiver.close();
    }
  });
});

const doc = (r: { json: any }) => r.json as Json;
