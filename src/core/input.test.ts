import { describe, expect, it } from 'vitest';
import { HeraldError } from './errors.ts';
import { isStorableString, LIMITS, parseNotificationRequest } from './input.ts';

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
      title: null,
      body: null,
      data: null,
      sendAt: null,
      groupKey: null,
    });
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
