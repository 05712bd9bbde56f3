import { describe, expect, it } from 'vitest';
import { HeraldError } from './errors.ts';
import { idSchema, isStorableString, LIMITS, parseNotificationRequest } from './input.ts';

const base = { to: ['alice'], category: 'comment.reply' };

/** The fields a validation error names (each once), failing the test if `input` is accepted. */
function rejectedFields(input: unknown): string[] {
  try {
    parseNotificationRequest(input);
  } catch (e) {
    expect(e).toBeInstanceOf(HeraldError);
    const err = e as HeraldError;
    expect(err.code).toBe('HERALD_ERR_VALIDATION');
    expect(err.status).toBe(400);
    return [...new Set((err.details as { field: string }[]).map((d) => d.field))];
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

describe('isStorableString', () => {
  it('accepts well-formed text, including astral characters as surrogate pairs', () => {
    for (const s of ['', 'plain', 'é ✓ 中文', '😀', '\uD83D\uDE00\uD83D\uDE00', 'a\u0001b', 'tab\there']) {
      expect(isStorableString(s)).toBe(true);
    }
  });

  it('refuses NUL and unpaired surrogates wherever they sit', () => {
    for (const s of [
      '\u0000',
      'a\u0000b',
      '\uD800', // lone high surrogate at the end
      '\uD800x', // high surrogate followed by a non-surrogate
      '\uDC00', // lone low surrogate
      'x\uDFFF', // low surrogate without a high one before it
      '\uDE00\uD83D', // a pair in the wrong order
      '😀\uD83D', // a valid pair, then half of another
    ]) {
      expect(isStorableString(s), JSON.stringify(s)).toBe(false);
    }
  });
});

describe('parseNotificationRequest', () => {
  it('fills the defaults', () => {
    expect(parseNotificationRequest(base)).toEqual({
      to: ['alice'],
      category: 'comment.reply',
      priority: 'normal',
      channels: ['in_app'],
      steps: null,
      title: null,
      body: null,
      data: null,
      sendAt: null,
      groupKey: null,
      defaulted: ['priority', 'channels'],
    });
  });

  it('says which defaults were filled, and nothing when all were given', () => {
    expect(parseNotificationRequest({ ...base, priority: 'high' }).defaulted).toEqual(['channels']);
    expect(parseNotificationRequest({ ...base, channels: ['email'] }).defaulted).toEqual(['priority']);
    expect(parseNotificationRequest({ ...base, priority: 'normal', channels: ['in_app'] })).not.toHaveProperty(
      'defaulted',
    );
  });

  it('takes a ttl as an ISO 8601 duration of at least a second and at most 366 days', () => {
    const r = parseNotificationRequest({ ...base, ttl: 'PT30M' });
    expect([r.ttl, r.ttlMs]).toEqual(['PT30M', 1_800_000]);
    expect(parseNotificationRequest(base)).not.toHaveProperty('ttl');
    expect(rejectedFields({ ...base, ttl: 'P1Y' })).toEqual(['ttl']);
    expect(rejectedFields({ ...base, ttl: 'P367D' })).toEqual(['ttl']);
    expect(rejectedFields({ ...base, ttl: 'PT0S' })).toEqual(['ttl']);
    expect(rejectedFields({ ...base, ttl: 30 })).toEqual(['ttl']);
  });

  it('names the field that holds a lone surrogate', () => {
    expect(rejectedFields({ ...base, title: 'hi \uD83D' })).toEqual(['title']);
    expect(rejectedFields({ ...base, body: '\uDE00 there' })).toEqual(['body']);
    expect(rejectedFields({ ...base, groupKey: 'k\uD800' })).toEqual(['groupKey']);
    expect(rejectedFields({ ...base, data: { deep: [{ s: 'x\uDBFF' }] } })).toEqual(['data']);
    expect(rejectedFields({ ...base, data: { ['k\uDC00']: 1 } })).toEqual(['data']);
    // A well-formed pair is fine.
    expect(parseNotificationRequest({ ...base, title: 'hi 😀', data: { e: '😀' } }).title).toBe('hi 😀');
  });

  it('names the field that holds a NUL', () => {
    expect(rejectedFields({ ...base, title: 'a\u0000b' })).toEqual(['title']);
    expect(rejectedFields({ ...base, body: '\u0000' })).toEqual(['body']);
    expect(rejectedFields({ ...base, data: { list: ['ok', 'n\u0000ul'] } })).toEqual(['data']);
    expect(rejectedFields({ ...base, data: { ['nul\u0000key']: true } })).toEqual(['data']);
    expect(rejectedFields({ ...base, to: ['alice', 'bo\u0000b'] })).toEqual(['to.1']);
  });

  it('names every bad field at once', () => {
    expect(rejectedFields({ ...base, title: '\u0000', body: '\uD800' }).sort()).toEqual(['body', 'title']);
  });

  it('removes repeated recipients, keeping first-seen order', () => {
    const r = parseNotificationRequest({ ...base, to: ['bob', 'alice', 'bob', 'carol', 'alice', 'bob'] });
    expect(r.to).toEqual(['bob', 'alice', 'carol']);
  });

  it('treats ids that differ only in case or normalisation as different users', () => {
    const r = parseNotificationRequest({ ...base, to: ['Bob', 'bob', 'caf\u00e9', 'cafe\u0301'] });
    expect(r.to).toEqual(['Bob', 'bob', 'caf\u00e9', 'cafe\u0301']);
  });

  it('accepts the largest recipient list and refuses one more', () => {
    const max = Array.from({ length: LIMITS.recipients }, (_, i) => `u${i}`);
    expect(parseNotificationRequest({ ...base, to: max }).to).toHaveLength(LIMITS.recipients);
    expect(rejectedFields({ ...base, to: [...max, 'one-more'] })).toEqual(['to']);
  });

  it('refuses empty or malformed recipient lists and repeated channels', () => {
    expect(rejectedFields({ ...base, to: [] })).toEqual(['to']);
    expect(rejectedFields({ ...base, to: ['a/b'] })).toEqual(['to.0']);
    expect(rejectedFields({ ...base, to: [' alice'] })).toEqual(['to.0']);
    expect(rejectedFields({ ...base, to: [''] })).toEqual(['to.0']);
    expect(rejectedFields({ ...base, channels: ['in_app', 'in_app'] })).toEqual(['channels']);
    expect(rejectedFields({ ...base, channels: ['pigeon'] })).toEqual(['channels.0']);
  });
});

describe('channel steps', () => {
  const messages = (input: unknown): Record<string, string> => {
    try {
      parseNotificationRequest(input);
    } catch (e) {
      return Object.fromEntries(
        ((e as HeraldError).details as { field: string; message: string }[]).map((d) => [d.field, d.message]),
      );
    }
    throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
  };

  it('accepts steps mixed with names: channels keeps every name in order, steps the objects', () => {
    const r = parseNotificationRequest({
      ...base,
      channels: ['in_app', { channel: 'email', after: 'PT10M', unless: 'read' }, { channel: 'sms', after: 'P1DT1S' }],
    });
    expect(r.channels).toEqual(['in_app', 'email', 'sms']);
    expect(r.steps).toEqual([
      { channel: 'email', after: 'PT10M', afterMs: 600_000, unless: 'read' },
      { channel: 'sms', after: 'P1DT1S', afterMs: 86_401_000, unless: null },
    ]);
  });

  it('accepts a step without a delay, with `unless` alone, and an in-app step with a delay', () => {
    const r = parseNotificationRequest({
      ...base,
      channels: [{ channel: 'in_app', after: 'PT5S' }, { channel: 'push', unless: 'delivered' }, { channel: 'chat' }],
    });
    expect(r.steps).toEqual([
      { channel: 'in_app', after: 'PT5S', afterMs: 5_000, unless: null },
      { channel: 'push', after: null, afterMs: 0, unless: 'delivered' },
      { channel: 'chat', after: null, afterMs: 0, unless: null },
    ]);
  });

  it('names the field of a bad step', () => {
    expect(messages({ ...base, channels: ['in_app', { channel: 'email', after: '10 minutes' }] })).toEqual({
      'channels.1.after': 'must be an ISO 8601 duration such as PT10M or P1DT2H',
    });
    expect(messages({ ...base, channels: ['in_app', { channel: 'email', after: 'P31D' }] })).toEqual({
      'channels.1.after': 'must be at most P30D',
    });
    expect(messages({ ...base, channels: ['in_app', { channel: 'email', after: 600 }] })).toHaveProperty(
      'channels.1.after',
    );
    expect(messages({ ...base, channels: ['in_app', { channel: 'email', unless: 'seen' }] })).toEqual({
      'channels.1.unless': 'must be "read" or "delivered"',
    });
    expect(messages({ ...base, channels: [{ channel: 'in_app', unless: 'read' }] })).toEqual({
      'channels.0.unless': 'is a condition on the in-app delivery itself; put it on another channel',
    });
    expect(messages({ ...base, channels: ['in_app', { channel: 'email', delay: 'PT1M' }] })).toEqual({
      'channels.1': 'unknown field(s): delay',
    });
    expect(Object.keys(messages({ ...base, channels: ['in_app', { after: 'PT1M' }] }))).toEqual(['channels.1.channel']);
    expect(Object.keys(messages({ ...base, channels: [{ channel: 'pigeon' }] }))).toEqual(['channels.0.channel']);
    expect(Object.keys(messages({ ...base, channels: [['email']] }))).toEqual(['channels.0']);
    expect(Object.keys(messages({ ...base, channels: [null] }))).toEqual(['channels.0']);
  });

  it('refuses a channel named twice, as a name and as a step', () => {
    expect(messages({ ...base, channels: ['email', { channel: 'email', after: 'PT1M' }] })).toEqual({
      channels: 'must not repeat a channel (email)',
    });
    expect(rejectedFields({ ...base, channels: [{ channel: 'sms' }, { channel: 'sms', after: 'PT1M' }] })).toEqual([
      'channels',
    ]);
  });
});

describe('idSchema', () => {
  const messageFor = (id: string) => {
    const r = idSchema.safeParse(id);
    expect(r.success, JSON.stringify(id)).toBe(false);
    return r.error?.issues.map((i) => i.message).join('; ') ?? '';
  };

  it('refuses the dot segments that URL normalisation collapses', () => {
    expect(messageFor('.')).toMatch(/must not be "\." or "\.\."/);
    expect(messageFor('..')).toMatch(/must not be "\." or "\.\."/);
    expect(rejectedFields({ ...base, to: ['alice', '..'] })).toEqual(['to.1']);
    expect(rejectedFields({ ...base, to: { topic: '.' } })).toEqual(['to.topic']);
  });

  it('accepts ids that merely contain dots', () => {
    for (const id of ['...', '.alice', 'alice.', 'a..b', 'first.last', '.hidden']) {
      expect(idSchema.safeParse(id).success, id).toBe(true);
    }
  });

  it('refuses invisible format characters (Unicode Cf) anywhere, naming the code point', () => {
    const cases: [string, string][] = [
      ['\u200Balice', 'U+200B'], // zero-width space
      ['al\u200Dice', 'U+200D'], // zero-width joiner
      ['al\u200Cice', 'U+200C'], // zero-width non-joiner
      ['\uFEFFalice', 'U+FEFF'], // byte-order mark
      ['alice\u202Egnp.exe', 'U+202E'], // right-to-left override
      ['ali\u2066ce', 'U+2066'], // left-to-right isolate
      ['a\u2060lice', 'U+2060'], // word joiner
      ['al\u00ADice', 'U+00AD'], // soft hyphen
      ['alice\u061C', 'U+061C'], // Arabic letter mark
      ['alice\u{E0041}', 'U+E0041'], // a tag character (astral)
    ];
    for (const [id, code] of cases) {
      expect(messageFor(id), JSON.stringify(id)).toContain(`invisible format characters (found ${code})`);
    }
    expect(rejectedFields({ ...base, to: ['bob', '\u200Balice'] })).toEqual(['to.1']);
  });

  it('still accepts visible non-ASCII ids', () => {
    for (const id of ['café', 'cafe\u0301', '中文', 'Ωmega', '😀', 'user-1_x@example.com', 'a+b=c']) {
      expect(idSchema.safeParse(id).success, id).toBe(true);
    }
  });
});
