import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configErrorOf } from '../test/support/config-errors.ts';
import { loadConfig, SETTINGS } from './config.ts';

/** Every piece of `value` of 4 characters or more: none of them may appear in the message. */
function expectNoPartOf(message: string, value: string): void {
  for (let len = Math.min(4, value.length); len <= value.length; len++) {
    for (let i = 0; i + len <= value.length; i++) {
      const piece = value.slice(i, i + len);
      if (/^[a-z]+$/i.test(piece) && len < 6) continue; // short plain words ("post", "user") are not secrets
      expect(message, `the message shows "${piece}" of the secret`).not.toContain(piece);
    }
  }
}

describe('configuration errors never show a secret', () => {
  it.each([
    ['HERALD_JWT_SECRET', 'sh0rt!', 'at least 16'],
    ['HERALD_JWT_SECRET', 'x7', 'at least 16'],
    ['HERALD_API_KEYS', 'k3y-0ne-ok-0123456789,sh0rt-k3y', 'at least 16'],
    ['HERALD_API_KEYS', 'tiny#1', 'at least 16'],
    ['HERALD_WEBHOOK_SECRET', 'whsec_n0t*q9z?9876Q', 'whsec_'],
    ['HERALD_WEBHOOK_SECRET', 'my-webhook-s3cret-value', 'whsec_'],
  ])('%s=%s', (name, value, mention) => {
    const message = configErrorOf({ [name]: value });
    expect(message).toContain(name);
    expect(message).toContain(mention);
    expect(message).toContain('value not shown');
    // `whsec_` is the documented format (the message says it must start so), not the secret.
    expectNoPartOf(message, value.replace(/^whsec_/, ''));
  });

  it('names which API key is wrong without showing any of them', () => {
    const message = configErrorOf({ HERALD_API_KEYS: 'first-key-0123456789,second-key-0123456789,sh0rt9' });
    expect(message).toContain('HERALD_API_KEYS (key 3; value not shown)');
    expectNoPartOf(message, 'first-key-0123456789');
    expectNoPartOf(message, 'sh0rt9');
  });

  it.each([
    ['a mistyped scheme', 'postgress://herald:Hunt3r-22@db.internal:5432/herald', 'postgress://herald:***@db.internal'],
    ['no scheme at all', 'herald:Hunt3r-22@db.internal:5432/herald', '"***@db.internal:5432/herald"'],
    ['a single slash', 'postgres:/herald:Hunt3r-22@db.internal/herald', '"***@db.internal/herald"'],
    ['a password in the query', 'mysql://db.internal/herald?user=me&password=Hunt3r-22', 'password=***'],
  ])('DATABASE_URL with %s shows the URL with its password replaced', (_what, value, shown) => {
    const message = configErrorOf({ DATABASE_URL: value });
    expect(message).toContain('DATABASE_URL=');
    expect(message).toContain(shown);
    expectNoPartOf(message, 'Hunt3r-22');
  });

  it('hides secrets that appear in the message of another setting', () => {
    // The same value given to a setting that is not secret is shown there, but not where it is the secret.
    const message = configErrorOf({ HERALD_JWT_SECRET: 'jwt-s3cret-but-ok-123', PORT: 'jwt-s3cret-but-ok-123' });
    expect(message).toContain('PORT=');
    expectNoPartOf(message, 'jwt-s3cret-but-ok-123');
  });

  it('accepts good secrets (the checks above are not refusing everything)', () => {
    const c = loadConfig({
      HERALD_JWT_SECRET: '0123456789abcdef',
      HERALD_API_KEYS: 'k3y-0ne-ok-0123456789',
      HERALD_WEBHOOK_SECRET: `whsec_${Buffer.from('0123456789abcdef01').toString('base64')}`,
      DATABASE_URL: 'postgres://herald:Hunt3r-22@db/herald',
    });
    expect(c.jwtSecret).toBe('0123456789abcdef');
    expect(c.databaseUrl).toBe('postgres://herald:Hunt3r-22@db/herald');
  });
});

describe('settings as `herald start --help` shows them', () => {
  it('every setting has a description and a default', () => {
    for (const s of SETTINGS) {
      expect(s.description, s.name).not.toBe('');
      expect(s.default, s.name).not.toBe('');
    }
    const byName = new Map(SETTINGS.map((s) => [s.name, s]));
    expect(byName.get('PORT')?.default).toBe('8080');
    expect(byName.get('HOST')?.default).toBe('127.0.0.1');
    expect(byName.get('HERALD_LANE_CONCURRENCY')?.default).toBe('critical=16,high=16,normal=32,bulk=16');
    expect(byName.get('HERALD_JWT_SECRET')?.secret).toBe(true);
    expect(byName.get('HERALD_MAX_TOKEN_TTL')?.secret).toBe(false);
  });

  it('docs/configuration.md gives the same default wherever the code has a literal one', () => {
    const doc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    const cells = new Map(
      [...doc.matchAll(/^\| `([A-Z_]+)` \| ([^|]*) \|/gm)].map((m) => [m[1], (m[2] ?? '').replaceAll('`', '').trim()]),
    );
    for (const s of SETTINGS) {
      if (s.default === 'unset') continue;
      expect(cells.get(s.name), s.name).toBe(s.default);
    }
  });
});
