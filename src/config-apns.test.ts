import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configErrorOf } from '../test/support/config-errors.ts';
import { loadConfig } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'herald-apns-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
const KEY_PEM = p256.toString();
/** The base64 body of the key: what must never show in a message. */
const KEY_BODY = KEY_PEM.split('\n')[1] ?? '';
const KEY_PATH = write('AuthKey_ABC123DEFG.p8', KEY_PEM);

const FULL = {
  HERALD_APNS_KEY: KEY_PATH,
  HERALD_APNS_KEY_ID: 'ABC123DEFG',
  HERALD_APNS_TEAM_ID: 'TEAM123456',
  HERALD_APNS_TOPIC: 'com.example.herald',
};

describe('APNs settings', () => {
  it('unset: no APNs sender', () => {
    expect(loadConfig({}).apns).toBeUndefined();
  });

  it('all four set: the key read from its file, with the default base URL', () => {
    expect(loadConfig(FULL).apns).toEqual({
      privateKey: KEY_PEM,
      keyId: 'ABC123DEFG',
      teamId: 'TEAM123456',
      topic: 'com.example.herald',
      baseUrl: 'https://api.push.apple.com',
    });
  });

  it('takes another base URL without its trailing slash', () => {
    const c = loadConfig({ ...FULL, HERALD_APNS_BASE_URL: 'https://api.sandbox.push.apple.com/' });
    expect(c.apns?.baseUrl).toBe('https://api.sandbox.push.apple.com');
  });

  it.each([['HERALD_APNS_KEY'], ['HERALD_APNS_KEY_ID'], ['HERALD_APNS_TEAM_ID'], ['HERALD_APNS_TOPIC']] as const)(
    'refuses to start with %s missing, naming it',
    (missing) => {
      const env: Record<string, string> = { ...FULL };
      delete env[missing];
      expect(configErrorOf(env)).toContain(`${missing}: must be set with`);
    },
  );

  it('with only the key id set, names the three missing', () => {
    expect(configErrorOf({ HERALD_APNS_KEY_ID: 'ABC123DEFG' })).toContain(
      'HERALD_APNS_KEY, HERALD_APNS_TEAM_ID, HERALD_APNS_TOPIC: must be set with HERALD_APNS_KEY_ID',
    );
  });

  it('refuses a key file that cannot be read, naming the path', () => {
    const message = configErrorOf({ ...FULL, HERALD_APNS_KEY: join(dir, 'missing.p8') });
    expect(message).toContain('HERALD_APNS_KEY=');
    expect(message).toContain('missing.p8');
    expect(message).toContain('ENOENT');
  });

  it.each([
    [
      'an RSA key',
      generateKeyPairSync('rsa', { modulusLength: 2048 })
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString(),
    ],
    [
      'a P-384 key',
      generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    ],
    [
      'a SEC1 (not PKCS#8) P-256 key',
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString(),
    ],
    ['text that is not a key', 'not a key at all\n'],
    ['a truncated key', KEY_PEM.slice(0, 120)],
  ])('refuses %s without showing the file', (_, content) => {
    const path = write(`bad-${Math.random().toString(36).slice(2)}.p8`, content);
    const message = configErrorOf({ ...FULL, HERALD_APNS_KEY: path });
    expect(message).toContain('HERALD_APNS_KEY=');
    expect(message).toContain('PKCS#8 PEM P-256 private key');
    expect(message).not.toContain(KEY_BODY);
    expect(message).not.toContain(content.split('\n')[1] || content.trim());
  });

  it.each([
    ['HERALD_APNS_KEY_ID', 'abc', '10-character key id'],
    ['HERALD_APNS_TEAM_ID', 'team 12345', '10-character Apple developer team id'],
    ['HERALD_APNS_TOPIC', 'com example', 'bundle id'],
    ['HERALD_APNS_BASE_URL', 'api.push.apple.com', 'https://'],
    ['HERALD_APNS_BASE_URL', 'https://api.push.apple.com/3/device', 'without path'],
  ])('refuses %s=%s', (name, value, mention) => {
    const message = configErrorOf({ ...FULL, [name]: value });
    expect(message).toContain(name);
    expect(message).toContain(mention);
  });
});
