import { describe, expect, it } from 'vitest';
import { configErrorOf } from '../test/support/config-errors.ts';
import { loadConfig } from './config.ts';

const SID = `AC${'0123456789abcdef'.repeat(2)}`;
const TOKEN = 'tw-token-do-not-print-4f1c9a';
const FULL = {
  HERALD_TWILIO_ACCOUNT_SID: SID,
  HERALD_TWILIO_AUTH_TOKEN: TOKEN,
  HERALD_TWILIO_FROM: '+14155550100',
};

describe('Twilio settings', () => {
  it('unset: no SMS provider', () => {
    expect(loadConfig({}).twilio).toBeUndefined();
  });

  it('all three set: the provider settings, with the default base URL', () => {
    expect(loadConfig(FULL).twilio).toEqual({
      accountSid: SID,
      authToken: TOKEN,
      from: '+14155550100',
      baseUrl: 'https://api.twilio.com',
    });
  });

  it('takes a messaging service sid as the sender and a base URL without its trailing slash', () => {
    const from = `MG${'a'.repeat(32)}`;
    const c = loadConfig({ ...FULL, HERALD_TWILIO_FROM: from, HERALD_TWILIO_BASE_URL: 'http://127.0.0.1:9999/' });
    expect(c.twilio).toMatchObject({ from, baseUrl: 'http://127.0.0.1:9999' });
  });

  it.each([['HERALD_TWILIO_ACCOUNT_SID'], ['HERALD_TWILIO_AUTH_TOKEN'], ['HERALD_TWILIO_FROM']] as const)(
    'refuses to start with %s missing, naming it, never showing the token',
    (missing) => {
      const env: Record<string, string> = { ...FULL };
      delete env[missing];
      const message = configErrorOf(env);
      expect(message).toContain(`${missing}: must be set with`);
      expect(message).not.toContain(TOKEN);
    },
  );

  it('with only the token set, names the two missing and does not show the token', () => {
    const message = configErrorOf({ HERALD_TWILIO_AUTH_TOKEN: TOKEN });
    expect(message).toContain('HERALD_TWILIO_ACCOUNT_SID, HERALD_TWILIO_FROM: must be set');
    expect(message).not.toContain(TOKEN);
  });

  it.each([
    ['HERALD_TWILIO_ACCOUNT_SID', 'SK0123', 'AC followed by 32'],
    ['HERALD_TWILIO_FROM', '4155550100', 'E.164'],
    ['HERALD_TWILIO_FROM', 'MGshort', 'E.164'],
    ['HERALD_TWILIO_BASE_URL', 'api.twilio.com', 'http:// or https://'],
  ])('refuses %s=%s', (name, value, mention) => {
    const message = configErrorOf({ ...FULL, [name]: value });
    expect(message).toContain(name);
    expect(message).toContain(mention);
    expect(message).not.toContain(TOKEN);
  });

  it('an invalid setting beside the token does not show the token', () => {
    const message = configErrorOf({ ...FULL, HERALD_TWILIO_FROM: TOKEN });
    expect(message).toContain('HERALD_TWILIO_FROM');
    expect(message).not.toContain(TOKEN);
  });
});
