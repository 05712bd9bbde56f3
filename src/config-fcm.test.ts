import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configErrorOf } from '../test/support/config-errors.ts';
import { loadConfig } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'herald-fcm-config-'));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
const KEY_BODY = rsa.split('\n')[1] as string;

const GOOD = {
  type: 'service_account',
  project_id: 'herald-demo',
  private_key_id: 'abc123',
  private_key: rsa,
  client_email: 'herald@herald-demo.iam.gserviceaccount.com',
  token_uri: 'https://oauth2.googleapis.com/token',
};

let n = 0;
function file(content: unknown): string {
  const path = join(dir, `sa-${++n}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('FCM settings', () => {
  it('unset: no FCM sender', () => {
    expect(loadConfig({}).fcm).toBeUndefined();
    expect(loadConfig({ HERALD_FCM_BASE_URL: 'http://127.0.0.1:1' }).fcm).toBeUndefined();
  });

  it('reads the service-account file, with the default base URL', () => {
    expect(loadConfig({ HERALD_FCM_SERVICE_ACCOUNT: file(GOOD) }).fcm).toEqual({
      serviceAccount: {
        projectId: 'herald-demo',
        clientEmail: GOOD.client_email,
        privateKey: rsa,
        privateKeyId: 'abc123',
        tokenUri: GOOD.token_uri,
      },
      baseUrl: 'https://fcm.googleapis.com',
    });
  });

  it('takes a base URL without its trailing slash, and a PKCS#1 key', () => {
    const pkcs1 = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs1', format: 'pem' })
      .toString();
    const c = loadConfig({
      HERALD_FCM_SERVICE_ACCOUNT: file({ ...GOOD, private_key: pkcs1 }),
      HERALD_FCM_BASE_URL: 'http://127.0.0.1:9999/',
    });
    expect(c.fcm?.baseUrl).toBe('http://127.0.0.1:9999');
    expect(c.fcm?.serviceAccount.privateKey).toBe(pkcs1);
  });

  it.each([
    ['project_id', undefined, '"project_id" is missing'],
    ['project_id', 'has/slash', '"project_id" must be a project id'],
    ['client_email', undefined, '"client_email" is missing'],
    ['client_email', 'not-an-email', '"client_email" must be an email address'],
    ['private_key', undefined, '"private_key" is missing'],
    [
      'private_key',
      `-----BEGIN PRIVATE KEY-----\n${KEY_BODY}\n-----END PRIVATE KEY-----\n`,
      '"private_key" is not a PEM private key',
    ],
    ['private_key', ec, '"private_key" must be an RSA key'],
    ['token_uri', undefined, '"token_uri" is missing'],
    ['token_uri', 'ftp://example.com/token', '"token_uri" must be an http:// or https:// URL'],
    ['type', 'authorized_user', 'not "service_account"'],
  ])('refuses a file whose %s is %s, naming the setting and the field, never the key', (field, value, mention) => {
    const content: Record<string, unknown> = { ...GOOD };
    if (value === undefined) delete content[field];
    else content[field] = value;
    const path = file(content);
    const message = configErrorOf({ HERALD_FCM_SERVICE_ACCOUNT: path });
    expect(message).toContain(`HERALD_FCM_SERVICE_ACCOUNT="${path}"`);
    expect(message).toContain(mention);
    expect(message).not.toContain(KEY_BODY);
    expect(message).not.toContain('PRIVATE KEY');
  });

  it('refuses a missing file and a file that is not JSON, without quoting it', () => {
    expect(configErrorOf({ HERALD_FCM_SERVICE_ACCOUNT: join(dir, 'nope.json') })).toContain(
      'cannot read the file (ENOENT)',
    );
    const broken = file(JSON.stringify(GOOD).slice(0, -5));
    const message = configErrorOf({ HERALD_FCM_SERVICE_ACCOUNT: broken });
    expect(message).toContain('the file is not JSON');
    expect(message).not.toContain('PRIVATE KEY');
    expect(message).not.toContain(KEY_BODY);
  });

  it('refuses a base URL that is not http(s)', () => {
    expect(
      configErrorOf({ HERALD_FCM_SERVICE_ACCOUNT: file(GOOD), HERALD_FCM_BASE_URL: 'fcm.googleapis.com' }),
    ).toContain('HERALD_FCM_BASE_URL');
  });
});
