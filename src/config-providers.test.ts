import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configErrorOf } from '../test/support/config-errors.ts';
import { loadConfig } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'herald-config-'));
let n = 0;
function file(content: unknown): string {
  const path = join(dir, `providers-${++n}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const SMTP = { HERALD_SMTP_URL: 'smtp://u:p@127.0.0.1:2525', HERALD_EMAIL_FROM: 'n@example.com' };
const TOKEN = 'twilio-token-never-shown-77';

describe('HERALD_CONFIG', () => {
  it('unset: no file', () => {
    expect(loadConfig({}).providersFile).toBeUndefined();
  });

  it('defines providers, tunes the environment’s, and orders a channel', () => {
    const path = file({
      providers: {
        smtp: { rateLimit: { perSecond: 200, burst: 20 }, circuitBreaker: { failures: 3 } },
        'smtp-backup': { type: 'smtp', url: 'smtps://relay2.example.com' },
        'twilio-eu': {
          type: 'twilio',
          accountSid: `AC${'a'.repeat(32)}`,
          authToken: TOKEN,
          from: '+4915550100',
          rateLimit: { perSecond: 1 },
        },
        webhook: { circuitBreaker: false },
      },
      channels: { email: ['smtp-backup', 'smtp'] },
    });
    const f = loadConfig({ ...SMTP, HERALD_CONFIG: path }).providersFile;
    expect(f?.tuning.get('smtp')).toEqual({
      rateLimit: { perSecond: 200, burst: 20 },
      circuitBreaker: { failures: 3, openMs: 30_000 },
    });
    expect(f?.tuning.get('webhook')).toEqual({ circuitBreaker: false });
    expect(f?.extra).toEqual([
      { name: 'smtp-backup', type: 'smtp', url: 'smtps://relay2.example.com', from: 'n@example.com' },
      {
        name: 'twilio-eu',
        type: 'twilio',
        accountSid: `AC${'a'.repeat(32)}`,
        authToken: TOKEN,
        from: '+4915550100',
        baseUrl: 'https://api.twilio.com',
        rateLimit: { perSecond: 1, burst: 1 },
      },
    ]);
    expect(f?.channels).toEqual({ email: ['smtp-backup', 'smtp'] });
  });

  it('names the file and the field of every problem, never a credential', () => {
    const path = file({
      providers: {
        x: { type: 'twilio', accountSid: 'nope', authToken: TOKEN, from: '+1' },
        y: { type: 'smtp', url: 'http://mail' },
        z: { rateLimit: { perSecond: 0 } },
      },
    });
    const message = configErrorOf({ ...SMTP, HERALD_CONFIG: path });
    expect(message).toContain(`HERALD_CONFIG (${path})`);
    expect(message).toMatch(/providers\.x\.accountSid/);
    expect(message).toMatch(/providers\.y\.url/);
    expect(message).toMatch(/providers\.z\.rateLimit\.perSecond/);
    expect(message).not.toContain(TOKEN);
  });

  it('refuses tuning a provider that is not configured, and a channel order naming unknown or wrong providers', () => {
    expect(configErrorOf({ HERALD_CONFIG: file({ providers: { smtp: { rateLimit: { perSecond: 5 } } } }) })).toMatch(
      /providers\.smtp: no provider named smtp is configured/,
    );
    expect(configErrorOf({ ...SMTP, HERALD_CONFIG: file({ channels: { email: ['smtp', 'nope'] } }) })).toMatch(
      /channels\.email\.1: no provider is named nope/,
    );
    expect(configErrorOf({ ...SMTP, HERALD_CONFIG: file({ channels: { sms: ['smtp'] } }) })).toMatch(
      /channels\.sms\.0: smtp sends email, not sms/,
    );
    expect(
      configErrorOf({ ...SMTP, HERALD_CONFIG: file({ providers: { smtp: { type: 'smtp', url: 'smtp://h' } } }) }),
    ).toMatch(/providers\.smtp: the environment already defines a provider named smtp/);
  });

  it('an SMTP provider of the file needs a From when HERALD_EMAIL_FROM is unset', () => {
    expect(configErrorOf({ HERALD_CONFIG: file({ providers: { b: { type: 'smtp', url: 'smtp://h' } } }) })).toMatch(
      /providers\.b\.from: must be set when HERALD_EMAIL_FROM is not/,
    );
  });

  it('a file that cannot be read or is not JSON says so', () => {
    expect(configErrorOf({ HERALD_CONFIG: join(dir, 'missing.json') })).toMatch(/cannot be read/);
    expect(configErrorOf({ HERALD_CONFIG: file('{ "providers": ') })).toMatch(/is not JSON/);
  });
});
