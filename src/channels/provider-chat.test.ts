/**
 * The chat provider against a local Slack-compatible webhook: the message it builds (text, blocks,
 * mrkdwn escaping, Slack's length limits), where it reads the URL, and how it classifies answers.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ChatAnswer, type FakeChat, SLACK_ERRORS, startFakeChat } from '../../test/support/fake-chat.ts';
import type { DeliveryJob, JobUser, UserProfile } from '../core/types.ts';
import { EgressPolicy } from './egress-policy.ts';
import { ChatProvider, chatMessage, escapeMrkdwn } from './provider-chat.ts';

function job(over: { title?: string | null; body?: string | null; user?: JobUser | null } = {}): DeliveryJob {
  return {
    deliveryId: '0190a0b0-0000-7000-8000-000000000001',
    leaseToken: 'lease',
    attempt: 1,
    channel: 'chat',
    lane: 'normal',
    userId: 'u1',
    notification: {
      id: '0190a0b0-0000-7000-8000-000000000002',
      category: 'comment.reply',
      priority: 'normal',
      title: over.title === undefined ? 'New reply' : over.title,
      body: over.body === undefined ? 'Bob replied' : over.body,
      data: {},
      groupKey: null,
      createdAt: new Date(),
    },
    // As the take statement hands it over: no chatWebhookUrl.
    user:
      over.user === undefined
        ? { id: 'u1', email: null, phone: null, timezone: null, locale: null, webhookUrl: null }
        : over.user,
  };
}

describe('chatMessage', () => {
  it('text is title and body; blocks are a header with the title and a section with the body', () => {
    expect(chatMessage(job())).toEqual({
      text: 'New reply\nBob replied',
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: 'New reply' } },
        { type: 'section', text: { type: 'mrkdwn', text: 'Bob replied' } },
      ],
    });
  });

  it("escapes Slack's control characters & < > in mrkdwn, and only those", () => {
    expect(escapeMrkdwn('a & b <!channel> <https://evil|click> *x* > q')).toBe(
      'a &amp; b &lt;!channel&gt; &lt;https://evil|click&gt; *x* &gt; q',
    );
    const m = chatMessage(job({ title: 'R&D <!here>', body: '<@U123> 1 < 2 & 3 > 2' }));
    expect(m?.text).toBe('R&amp;D &lt;!here&gt;\n&lt;@U123&gt; 1 &lt; 2 &amp; 3 &gt; 2');
    expect(m?.blocks[1]).toEqual({
      type: 'section',
      text: { type: 'mrkdwn', text: '&lt;@U123&gt; 1 &lt; 2 &amp; 3 &gt; 2' },
    });
    // plain_text is not parsed by Slack: sent as written.
    expect(m?.blocks[0]).toEqual({ type: 'header', text: { type: 'plain_text', text: 'R&D <!here>' } });
  });

  it("keeps within Slack's limits: header 150 characters, section 3000 after escaping", () => {
    const m = chatMessage(job({ title: 'T'.repeat(400), body: '&'.repeat(2000) }));
    const [head, sect] = (m?.blocks ?? []) as { text: { text: string } }[];
    const header = head?.text.text ?? '';
    const section = sect?.text.text ?? '';
    expect([...header]).toHaveLength(150);
    expect(header.endsWith('…')).toBe(true);
    expect(section.length).toBeLessThanOrEqual(3000);
    expect(section.endsWith('&amp;…')).toBe(true); // never half an entity
    expect(section.length).toBeGreaterThan(2990);
  });

  it('only the parts that exist; nothing at all when there is neither title nor body', () => {
    expect(chatMessage(job({ title: null }))).toEqual({
      text: 'Bob replied',
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'Bob replied' } }],
    });
    expect(chatMessage(job({ body: null }))?.blocks).toEqual([
      { type: 'header', text: { type: 'plain_text', text: 'New reply' } },
    ]);
    expect(chatMessage(job({ title: null, body: '' }))).toBeNull();
  });
});

describe('ChatProvider', () => {
  let fake: FakeChat;
  let provider: ChatProvider;
  let answer: (n: number) => ChatAnswer = () => ({ status: 200, text: 'ok' });
  const profiles = new Map<string, UserProfile>();
  let lookups = 0;

  beforeEach(async () => {
    fake = await startFakeChat((_r, n) => answer(n));
    lookups = 0;
    profiles.clear();
    provider = new ChatProvider({
      timeoutMs: 1000,
      egress: new EgressPolicy(['127.0.0.0/8']),
      users: {
        getUser: async (id) => {
          lookups++;
          return profiles.get(id) ?? null;
        },
      },
    });
  });

  afterEach(async () => {
    await provider.close();
    await fake.close();
    answer = () => ({ status: 200, text: 'ok' });
  });

  const withUrl = (url: string | null) =>
    profiles.set('u1', {
      id: 'u1',
      email: null,
      phone: null,
      timezone: null,
      locale: null,
      webhookUrl: null,
      chatWebhookUrl: url,
    });

  it("reads the URL from the user's profile and POSTs the message as JSON", async () => {
    withUrl(fake.url('u1'));
    expect(await provider.send(job())).toEqual({ ok: true, detail: { provider: 'chat', status: 200 } });
    expect(lookups).toBe(1);
    const [got, ...more] = fake.to('u1');
    expect(more).toEqual([]);
    expect(got?.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(got?.json).toEqual(chatMessage(job()));
  });

  it("uses the job's own chatWebhookUrl when its user carries one (no lookup)", async () => {
    const user = { id: 'u1', email: null, phone: null, timezone: null, locale: null, webhookUrl: null };
    expect(await provider.send(job({ user: { ...user, chatWebhookUrl: fake.url('own') } }))).toMatchObject({
      ok: true,
    });
    expect(lookups).toBe(0);
    expect(fake.to('own')).toHaveLength(1);
    expect(await provider.send(job({ user: { ...user, chatWebhookUrl: null } }))).toEqual({
      ok: false,
      skipped: 'user u1 has no chatWebhookUrl',
    });
  });

  it('skips a user without a chatWebhookUrl, an unknown user, and a message with nothing to show', async () => {
    withUrl(null);
    expect(await provider.send(job())).toEqual({ ok: false, skipped: 'user u1 has no chatWebhookUrl' });
    expect(await provider.send(job({ user: null }))).toEqual({ ok: false, skipped: 'user u1 has no chatWebhookUrl' });
    withUrl(fake.url('u1'));
    expect(await provider.send(job({ title: null, body: null }))).toEqual({
      ok: false,
      skipped: 'the notification has no title or body to send to chat',
    });
    expect(fake.received).toEqual([]);
  });

  it.each([
    [SLACK_ERRORS.noService, 'receiver answered HTTP 404: no_service'],
    [SLACK_ERRORS.archived, 'receiver answered HTTP 410: channel_is_archived'],
    [SLACK_ERRORS.prohibited, 'receiver answered HTTP 403: action_prohibited'],
    [SLACK_ERRORS.invalidPayload, 'receiver answered HTTP 400: invalid_payload'],
    [
      { status: 302, text: '', headers: { location: 'http://127.0.0.1:1/' } },
      'receiver answered HTTP 302 (redirects are not followed)',
    ],
  ])('%j is permanent, with what the receiver said', async (a, error) => {
    withUrl(fake.url('u1'));
    answer = () => a;
    expect(await provider.send(job())).toEqual({ ok: false, permanent: true, error });
  });

  it('429 with Retry-After, 500 and 503 are transient', async () => {
    withUrl(fake.url('u1'));
    answer = () => ({ status: 429, text: 'rate_limited', headers: { 'retry-after': '30' } });
    expect(await provider.send(job())).toEqual({
      ok: false,
      permanent: false,
      error: 'receiver answered HTTP 429: rate_limited',
      retryAfterMs: 30_000,
    });
    for (const status of [500, 503]) {
      answer = () => ({ status, text: 'internal\nerror' });
      expect(await provider.send(job())).toEqual({
        ok: false,
        permanent: false,
        error: `receiver answered HTTP ${status}: internal error`,
      });
    }
  });

  it('a profile that cannot be read is transient; nothing is sent', async () => {
    const failing = new ChatProvider({
      timeoutMs: 1000,
      egress: new EgressPolicy(['127.0.0.0/8']),
      users: { getUser: () => Promise.reject(new Error('connection terminated')) },
    });
    try {
      expect(await failing.send(job())).toEqual({
        ok: false,
        permanent: false,
        error: 'could not read the chatWebhookUrl of user u1: connection terminated',
      });
    } finally {
      await failing.close();
    }
    expect(fake.received).toEqual([]);
  });

  it('never connects to a destination the policy refuses: permanent, naming the address and the setting', async () => {
    const strict = new ChatProvider({
      timeoutMs: 1000,
      egress: new EgressPolicy([]),
      users: { getUser: async () => null },
    });
    try {
      const user = { id: 'u1', email: null, phone: null, timezone: null, locale: null, webhookUrl: null };
      const r = await strict.send(job({ user: { ...user, chatWebhookUrl: fake.url('u1') } }));
      expect(r).toMatchObject({ ok: false, permanent: true });
      expect((r as { error: string }).error).toMatch(
        /^destination 127\.0\.0\.1 is a loopback address.*HERALD_EGRESS_ALLOW/,
      );
    } finally {
      await strict.close();
    }
    expect(fake.received).toEqual([]);
  });
});
