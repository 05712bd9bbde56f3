import { describe, expect, it } from 'vitest';
import webpush from 'web-push';
import { configErrorOf } from '../test/support/config-errors.ts';
import { loadConfig, SETTINGS } from './config.ts';

const keys = webpush.generateVAPIDKeys();
const other = webpush.generateVAPIDKeys();
const FULL = {
  HERALD_VAPID_PUBLIC_KEY: keys.publicKey,
  HERALD_VAPID_PRIVATE_KEY: keys.privateKey,
  HERALD_VAPID_SUBJECT: 'mailto:ops@example.com',
};

describe('VAPID settings (Web Push)', () => {
  it('unset: no Web Push', () => {
    expect(loadConfig({}).vapid).toBeUndefined();
  });

  it('all three set: the keys and the subject (mailto: or https:)', () => {
    expect(loadConfig(FULL).vapid).toEqual({
      publicKey: keys.publicKey,
      privateKey: keys.privateKey,
      subject: 'mailto:ops@example.com',
    });
    const https = loadConfig({ ...FULL, HERALD_VAPID_SUBJECT: 'https://example.com/contact' });
    expect(https.vapid?.subject).toBe('https://example.com/contact');
  });

  it('set in part: start-up names the missing settings', () => {
    const msg = configErrorOf({ HERALD_VAPID_PUBLIC_KEY: keys.publicKey });
    expect(msg).toMatch(/HERALD_VAPID_PRIVATE_KEY, HERALD_VAPID_SUBJECT: must be set with HERALD_VAPID_PUBLIC_KEY/);
  });

  it('refuses a public key that is not an uncompressed P-256 point', () => {
    const notPoint = Buffer.alloc(65, 4).toString('base64url');
    expect(configErrorOf({ ...FULL, HERALD_VAPID_PUBLIC_KEY: notPoint })).toMatch(
      /HERALD_VAPID_PUBLIC_KEY.*not a point on the P-256 curve/,
    );
    expect(configErrorOf({ ...FULL, HERALD_VAPID_PUBLIC_KEY: keys.publicKey.slice(2) })).toMatch(
      /HERALD_VAPID_PUBLIC_KEY.*65 bytes/,
    );
    expect(configErrorOf({ ...FULL, HERALD_VAPID_PUBLIC_KEY: `${keys.publicKey}=` })).toMatch(/base64url/);
  });

  it('refuses a private key that is not 32 bytes of base64url, without showing it', () => {
    const bad = `${keys.privateKey}AAAA`;
    const msg = configErrorOf({ ...FULL, HERALD_VAPID_PRIVATE_KEY: bad });
    expect(msg).toMatch(/HERALD_VAPID_PRIVATE_KEY.*P-256 private key/);
    expect(msg).not.toContain(bad);
    expect(msg).not.toContain(keys.privateKey);
  });

  it('refuses a public key that is not the private key’s', () => {
    const msg = configErrorOf({ ...FULL, HERALD_VAPID_PUBLIC_KEY: other.publicKey });
    expect(msg).toMatch(/HERALD_VAPID_PUBLIC_KEY: is not the public key of HERALD_VAPID_PRIVATE_KEY/);
    expect(msg).not.toContain(keys.privateKey);
  });

  it('refuses a subject that is neither mailto: nor https:', () => {
    for (const subject of ['http://example.com', 'ops@example.com', 'mailto:']) {
      expect(configErrorOf({ ...FULL, HERALD_VAPID_SUBJECT: subject })).toMatch(
        /HERALD_VAPID_SUBJECT.*mailto: address or an https: URL/,
      );
    }
  });

  it('the private key is a secret setting', () => {
    expect(SETTINGS.find((s) => s.name === 'HERALD_VAPID_PRIVATE_KEY')?.secret).toBe(true);
    expect(SETTINGS.find((s) => s.name === 'HERALD_VAPID_PUBLIC_KEY')?.secret).toBe(false);
  });
});
