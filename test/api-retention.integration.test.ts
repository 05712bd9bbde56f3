/**
 * POST /v1/maintenance/retention: producer key only (no credentials, a user token → 401), answers
 * exactly its documented shape, and removes an expired notification with its inbox entry — which had
 * already left the inbox page the moment it expired.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETENTION_SHAPE } from '../src/api/openapi-retention.ts';
import { eventually, startTestHerald, type TestHerald } from './support/herald.ts';

describe('POST /v1/maintenance/retention', () => {
  let t: TestHerald;
  beforeAll(async () => {
    // No scheduler: the only retention runs are the ones this test asks for.
    t = await startTestHerald({ store: 'pglite', roles: ['api', 'worker'] });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('→ 401 without credentials or with a user token', async () => {
    expect((await t.api('POST', '/v1/maintenance/retention', undefined, { authorization: '' })).status).toBe(401);
    const { json: token } = await t.api('POST', '/v1/users/alice/tokens');
    const asUser = await t.api('POST', '/v1/maintenance/retention', undefined, {
      authorization: `Bearer ${token.token}`,
    });
    expect(asUser.status).toBe(401);
    expect(asUser.json.error.code).toBeTruthy();
  });

  it('→ 200 with what it removed: an expired notification, its delivery and its inbox item', async () => {
    const kept = await t.api('POST', '/v1/notifications', { to: ['bea'], category: 'news', title: 'Stays' });
    const brief = await t.api('POST', '/v1/notifications', {
      to: ['bea'],
      category: 'news',
      title: 'Gone soon',
      ttl: 'PT1S',
    });
    expect([kept.status, brief.status]).toEqual([202, 202]);
    await eventually(async () => {
      const page = await t.api('GET', '/v1/users/bea/inbox');
      return page.json.items.length === 2 ? page : null;
    }, 'both notifications in the inbox');
    // Expired: out of the page at once, before any run (its entry still counts until the run).
    await eventually(async () => {
      const page = await t.api('GET', '/v1/users/bea/inbox');
      return page.json.items.length === 1 ? page : null;
    }, 'the expired notification to leave the inbox page');

    const run = await t.api('POST', '/v1/maintenance/retention');
    expect(run.status).toBe(200);
    const parsed = RETENTION_SHAPE.schema.safeParse(run.json);
    expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
    // Its timeline held one stored event, `sent` (`accepted` is the notification row itself).
    expect(run.json.removed).toEqual({
      notifications: 1,
      deliveries: 1,
      inboxItems: 1,
      timelineEvents: 1,
      digests: 0,
      capWindows: 0,
    });

    expect((await t.api('GET', `/v1/notifications/${brief.json.id}`)).status).toBe(404);
    expect((await t.api('GET', `/v1/notifications/${kept.json.id}`)).status).toBe(200);
    const page = await t.api('GET', '/v1/users/bea/inbox');
    expect(page.json.items.map((i: { id: string }) => i.id)).toEqual([kept.json.id]);
    expect(page.json.unreadCount).toBe(1);

    const again = await t.api('POST', '/v1/maintenance/retention');
    expect(again.json.removed).toEqual({
      notifications: 0,
      deliveries: 0,
      inboxItems: 0,
      timelineEvents: 0,
      digests: 0,
      capWindows: 0,
    });
  });
});
