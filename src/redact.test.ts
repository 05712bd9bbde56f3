import { describe, expect, it } from 'vitest';
import { isSecretSetting, redact, secretsIn } from './redact.ts';

describe('redact', () => {
  it.each([
    // [text, expected]
    ['postgres://herald:hunter22@db.internal:5432/herald', 'postgres://herald:***@db.internal:5432/herald'],
    ['postgresql://herald@db/herald', 'postgresql://herald@db/herald'],
    ['postgres://db/herald?sslmode=require', 'postgres://db/herald?sslmode=require'],
    ['postgres://:onlypass@db/x', 'postgres://:***@db/x'],
    ['postgres://u:p%40ss%3Aw0rd@db/x', 'postgres://u:***@db/x'],
    ['postgres://u:p@ss@w0rd@db/x', 'postgres://u:***@db/x'],
    ['postgres://u:pa/ss@db/x', 'postgres://u:***@db/x'],
    ['postgres://u:pa?ss@db/x', 'postgres://u:***@db/x'],
    ['postgres://u:pa#ss@db/x', 'postgres://u:***@db/x'],
    ['postgres://db/x?user=me&password=hunter22', 'postgres://db/x?user=me&password=***'],
    [
      'postgres://db/x?sslpassword=abc1&sslkey=/k.pem&sslmode=verify-full',
      'postgres://db/x?sslpassword=***&sslkey=***&sslmode=verify-full',
    ],
    ['https://h/x?token=t0k3n&api_key=k3y&secret=s3cr3t&x=1', 'https://h/x?token=***&api_key=***&secret=***&x=1'],
    ['https://h/x?PassWord=abcd&AccessKey=abcd#frag', 'https://h/x?PassWord=***&AccessKey=***#frag'],
    ['https://h/x?pass%77ord=abcd', 'https://h/x?pass%77ord=***'],
    ['redis://:r3disPass@cache:6379/0', 'redis://:***@cache:6379/0'],
    ['smtps://mailer:m41lpass@smtp.example.com:465', 'smtps://mailer:***@smtp.example.com:465'],
    ['https://example.com/users/@alice?ref=x@y', 'https://example.com/users/@alice?ref=x@y'],
    [
      'cannot reach postgres://u:pw12@db:5432/x (ECONNREFUSED); also redis://:pw34@r:6379.',
      'cannot reach postgres://u:***@db:5432/x (ECONNREFUSED); also redis://:***@r:6379.',
    ],
    ['DATABASE_URL="postgres://u:pw12@db/x": bad', 'DATABASE_URL="postgres://u:***@db/x": bad'],
    ['no urls here, just words', 'no urls here, just words'],
  ])('%s', (text, expected) => {
    expect(redact(text)).toBe(expected);
  });

  it.each([
    // A URL setting's value that is not shaped like a URL: everything before the last @ is hidden.
    ['postgres:/herald:hunter22@db/herald', '***@db/herald'],
    ['postgress//herald:hunter22@db/herald', '***@db/herald'],
    ['herald:hunter22@db:5432/herald', '***@db:5432/herald'],
    ['db:5432/herald?password=hunter22', 'db:5432/herald?password=***'],
    ['postgress://herald:hunter22@db/herald', 'postgress://herald:***@db/herald'],
  ])('as a URL setting: %s', (value, expected) => {
    expect(redact(value, { asUrl: true })).toBe(expected);
  });

  it('hides listed secret values wherever they appear, the longest first', () => {
    const text = 'key abcd1234 and abcd1234efgh, and jwt s3cr3t-value in "s3cr3t-value"';
    expect(redact(text, { secrets: ['abcd1234', 'abcd1234efgh', 's3cr3t-value'] })).toBe(
      'key *** and ***, and jwt *** in "***"',
    );
  });

  it('does not search for secrets shorter than 4 characters (they would mangle the text)', () => {
    expect(redact('a cat sat', { secrets: ['a', 'at'] })).toBe('a cat sat');
  });

  it('collects the secrets among settings: secret values, their comma parts, URL passwords and credential params', () => {
    const found = secretsIn({
      HERALD_API_KEYS: 'key-one-0123456789,key-two-0123456789',
      HERALD_JWT_SECRET: 'jwt-secret-value',
      HERALD_WEBHOOK_SECRET: 'whsec_abcdefgh',
      DATABASE_URL: 'postgres://u:p%40ssword@db/x?sslpassword=sslpw123',
      REDIS_URL: 'redis://cache:6379',
      HERALD_MAX_TOKEN_TTL: '30d',
      PORT: '8080',
    });
    expect(found).toEqual(
      expect.arrayContaining([
        'key-one-0123456789',
        'key-two-0123456789',
        'jwt-secret-value',
        'whsec_abcdefgh',
        'p%40ssword',
        'p@ssword',
        'sslpw123',
      ]),
    );
    expect(found).not.toContain('30d');
    expect(found).not.toContain('8080');
  });

  it.each([
    ['HERALD_API_KEYS', true],
    ['HERALD_JWT_SECRET', true],
    ['HERALD_WEBHOOK_SECRET', true],
    ['HERALD_TWILIO_AUTH_TOKEN', true],
    ['HERALD_VAPID_PRIVATE_KEY', true],
    ['HERALD_MAX_TOKEN_TTL', false],
    ['DATABASE_URL', false],
    ['PORT', false],
  ])('%s is a secret setting: %s', (name, secret) => {
    expect(isSecretSetting(name)).toBe(secret);
  });
});
