import { describe, expect, it } from 'vitest';
import { HeraldError } from './errors.ts';
import { UnsubscribeTokens } from './unsubscribe-token.ts';

const tokens = new UnsubscribeTokens('test-jwt-secret-0123456789abcdef');
const subject = { userId: 'ada@example', category: 'comment.reply', channel: 'email' as const };

function refusal(token: string): string {
  try {
    tokens.verify(token);
  } catch (e) {
    expect(e).toBeInstanceOf(HeraldError);
    expect((e as HeraldError).code).toBe('HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN');
    expect((e as HeraldError).status).toBe(400);
    return (e as HeraldError).message;
  }
  throw new Error(`accepted ${token}`);
}

describe('unsubscribe tokens', () => {
  it('verify gives back what sign was given, and the token is URL-safe', () => {
    const t = tokens.sign(subject);
    expect(t).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(tokens.verify(t)).toEqual(subject);
    expect(tokens.verify(tokens.sign({ ...subject, userId: 'ü-ñ', channel: 'sms' }))).toEqual({
      ...subject,
      userId: 'ü-ñ',
      channel: 'sms',
    });
  });

  it('is the same for the same subject, different for another one', () => {
    expect(tokens.sign(subject)).toBe(tokens.sign(subject));
    expect(tokens.sign({ ...subject, userId: 'bob' })).not.toBe(tokens.sign(subject));
  });

  it('refuses a token signed with another secret', () => {
    const other = new UnsubscribeTokens('another-secret-0123456789abcdefgh');
    expect(refusal(other.sign(subject))).toMatch(/not signed/);
  });

  it('refuses a token whose payload was changed (another user, another category)', () => {
    const [, sig] = tokens.sign(subject).split('.');
    const forged = Buffer.from(JSON.stringify([1, 'mallory', 'comment.reply', 'email'])).toString('base64url');
    expect(refusal(`${forged}.${sig}`)).toMatch(/not signed/);
  });

  it('refuses a flipped signature bit, a truncated or padded token, and garbage', () => {
    const t = tokens.sign(subject);
    const last = t.at(-1) === 'A' ? 'B' : 'A';
    refusal(t.slice(0, -1) + last);
    refusal(t.slice(0, -1));
    refusal(`${t}=`);
    refusal(`${t}.x`);
    refusal('');
    refusal('.');
    refusal('abc');
    refusal(`x.${'A'.repeat(43)}`);
    refusal(`${'a'.repeat(3000)}.${'A'.repeat(43)}`);
  });

  it('is not a user token, and a user token is not one (a key of its own, derived with a label)', () => {
    const jwtLike = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl';
    refusal(jwtLike);
  });

  it('refuses a well-signed payload that names no valid subject (defence in depth)', () => {
    const mac = (tokens as unknown as { mac(p: string): Buffer }).mac.bind(tokens);
    const sign = (payload: unknown) => {
      const p = Buffer.from(JSON.stringify(payload)).toString('base64url');
      return `${p}.${mac(p).toString('base64url')}`;
    };
    expect(refusal(sign([2, 'ada', 'a.b', 'email']))).toMatch(/unknown format/);
    expect(refusal(sign([1, 'ada', 'a..b', 'email']))).toMatch(/no valid/);
    expect(refusal(sign([1, 'ada', 'a.b', 'fax']))).toMatch(/no valid/);
    expect(refusal(sign({ u: 'ada' }))).toMatch(/unknown format/);
  });
});
