/**
 * The device-token validators: what a push channel could not use is refused at registration,
 * naming the field, and what it can use comes out normalised (unpadded keys, lower-case APNs hex).
 */
import { createECDH, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { authSecretProblem, base64urlBytes, p256dhProblem, parseDeviceRequest } from './device-input.ts';
import { deviceIdentity, parseStoredDeviceToken, serialiseDeviceToken } from './devices.ts';
import { HeraldError } from './errors.ts';

function p256Point(): Buffer {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return ecdh.getPublicKey();
}

const P256DH = p256Point().toString('base64url');
const AUTH = randomBytes(16).toString('base64url');
const webpush = (token: Record<string, unknown>) => ({
  provider: 'webpush',
  token: { endpoint: 'https://push.example.com/sub/1', keys: { p256dh: P256DH, auth: AUTH }, ...token },
});
const withKeys = (keys: Record<string, unknown>) => webpush({ keys: { p256dh: P256DH, auth: AUTH, ...keys } });

/** The fields a refused registration names. */
function refusedFields(input: unknown, check?: (url: string) => string | null): string[] {
  try {
    parseDeviceRequest(input, check);
  } catch (e) {
    expect(e).toBeInstanceOf(HeraldError);
    expect((e as HeraldError).code).toBe('HERALD_ERR_VALIDATION');
    return ((e as HeraldError).details as { field: string }[]).map((d) => d.field);
  }
  throw new Error(`accepted ${JSON.stringify(input)}`);
}

describe('base64urlBytes', () => {
  it('decodes base64url with or without padding, and nothing else', () => {
    const bytes = randomBytes(16);
    expect(base64urlBytes(bytes.toString('base64url'))).toEqual(bytes);
    expect(base64urlBytes(`${bytes.toString('base64url')}==`)).toEqual(bytes);
    expect(base64urlBytes(Buffer.from([0xfb, 0xff]).toString('base64'))).toBeNull(); // '+/8=': base64, not base64url
    expect(base64urlBytes(Buffer.from([0xfb, 0xff]).toString('base64url'))).toEqual(Buffer.from([0xfb, 0xff]));
    expect(base64urlBytes('a/b+')).toBeNull();
    expect(base64urlBytes('abcde')).toBeNull(); // 5 characters cannot be whole bytes
    expect(base64urlBytes('AB')).toBeNull(); // trailing bits set: not a canonical encoding
    expect(base64urlBytes('')).toBeNull();
  });
});

describe('p256dhProblem and authSecretProblem', () => {
  it('accept a real uncompressed P-256 point and a 16-byte secret', () => {
    expect(p256dhProblem(P256DH)).toBeNull();
    expect(authSecretProblem(AUTH)).toBeNull();
  });

  it('refuse a compressed point, a point off the curve, the wrong length and the wrong prefix', () => {
    const point = p256Point();
    const compressed = createECDH('prime256v1');
    compressed.generateKeys();
    expect(p256dhProblem(compressed.getPublicKey(undefined, 'compressed').toString('base64url'))).toMatch(/65 bytes/);
    const off = Buffer.from(point);
    off[64] = (off[64] as number) ^ 1;
    expect(p256dhProblem(off.toString('base64url'))).toMatch(/not a point on the P-256 curve/);
    const prefixed = Buffer.from(point);
    prefixed[0] = 0x05;
    expect(p256dhProblem(prefixed.toString('base64url'))).toMatch(/starting with 0x04/);
    expect(p256dhProblem(point.subarray(0, 64).toString('base64url'))).toMatch(/got 64 bytes/);
    expect(p256dhProblem('not base64!')).toBe('must be base64url');
    expect(authSecretProblem(randomBytes(15).toString('base64url'))).toBe('must be 16 bytes, got 15');
    expect(authSecretProblem(randomBytes(32).toString('base64url'))).toBe('must be 16 bytes, got 32');
    expect(authSecretProblem('***')).toBe('must be base64url');
  });
});

describe('parseDeviceRequest', () => {
  it('normalises a Web Push subscription: unpadded keys, expirationTime dropped', () => {
    const r = parseDeviceRequest(withKeys({ p256dh: `${P256DH}=`, auth: `${AUTH}==` }));
    expect(r).toEqual({
      provider: 'webpush',
      token: { endpoint: 'https://push.example.com/sub/1', keys: { p256dh: P256DH, auth: AUTH } },
    });
    const fromBrowser = parseDeviceRequest(webpush({ expirationTime: null }));
    expect(fromBrowser).toEqual(r);
    expect(deviceIdentity(r)).toBe('https://push.example.com/sub/1');
  });

  it('takes FCM tokens as they are and APNs tokens in lower case', () => {
    const fcm = `dXk1Zz7bQkE:APA91b${'x'.repeat(140)}`;
    expect(parseDeviceRequest({ provider: 'fcm', token: fcm })).toEqual({ provider: 'fcm', token: fcm });
    const hex = 'AB'.repeat(32);
    expect(parseDeviceRequest({ provider: 'apns', token: hex })).toEqual({ provider: 'apns', token: 'ab'.repeat(32) });
    expect(parseDeviceRequest({ provider: 'apns', token: 'a1'.repeat(100) }).token).toHaveLength(200);
  });

  it.each([
    ['no provider', { token: 'x' }, 'provider'],
    ['an unknown provider', { provider: 'sms', token: 'x' }, 'provider'],
    ['not an object', 'fcm', '(body)'],
    ['an unknown field', { provider: 'fcm', token: 'x', label: 'phone' }, '(body)'],
    ['a Web Push token that is a string', { provider: 'webpush', token: 'https://push.example.com' }, 'token'],
    ['an http endpoint', webpush({ endpoint: 'http://push.example.com/sub/1' }), 'token.endpoint'],
    ['an endpoint that is not a URL', webpush({ endpoint: 'push.example.com' }), 'token.endpoint'],
    ['an endpoint with credentials', webpush({ endpoint: 'https://u:p@push.example.com/' }), 'token.endpoint'],
    [
      'an endpoint of 2001 characters',
      webpush({ endpoint: `https://push.example.com/${'a'.repeat(1976)}` }),
      'token.endpoint',
    ],
    ['no keys', { provider: 'webpush', token: { endpoint: 'https://push.example.com/' } }, 'token.keys'],
    ['an unknown field in the subscription', webpush({ topic: 'x' }), 'token'],
    ['a short p256dh', withKeys({ p256dh: P256DH.slice(0, 40) }), 'token.keys.p256dh'],
    ['a p256dh in base64', withKeys({ p256dh: `${P256DH.replace(/-/g, '+')}+` }), 'token.keys.p256dh'],
    ['an auth of 15 bytes', withKeys({ auth: randomBytes(15).toString('base64url') }), 'token.keys.auth'],
    ['a numeric auth', withKeys({ auth: 16 }), 'token.keys.auth'],
    ['an empty FCM token', { provider: 'fcm', token: '' }, 'token'],
    ['an FCM token with a space', { provider: 'fcm', token: 'abc def' }, 'token'],
    ['an FCM token with a control character', { provider: 'fcm', token: 'abc\u0007' }, 'token'],
    ['an FCM token of 4097 characters', { provider: 'fcm', token: 'a'.repeat(4097) }, 'token'],
    ['a non-hex APNs token', { provider: 'apns', token: 'g'.repeat(64) }, 'token'],
    ['an APNs token of 62 hex characters', { provider: 'apns', token: 'a'.repeat(62) }, 'token'],
    ['an APNs token of odd length', { provider: 'apns', token: 'a'.repeat(65) }, 'token'],
    ['an APNs token of 202 hex characters', { provider: 'apns', token: 'a'.repeat(202) }, 'token'],
    ['an APNs token with spaces', { provider: 'apns', token: `<${'ab'.repeat(16)} ${'ab'.repeat(16)}>` }, 'token'],
  ])('refuses %s, naming the field', (_what, input, field) => {
    expect(refusedFields(input)).toContain(field);
  });

  it('accepts exactly the boundary lengths', () => {
    expect(parseDeviceRequest({ provider: 'fcm', token: 'a'.repeat(4096) }).token).toHaveLength(4096);
    expect(parseDeviceRequest({ provider: 'apns', token: 'a'.repeat(64) }).token).toHaveLength(64);
    expect(parseDeviceRequest({ provider: 'apns', token: 'a'.repeat(66) }).token).toHaveLength(66);
  });

  it('refuses an endpoint the destination check refuses, naming token.endpoint with its reason', () => {
    const check = (url: string) => (url.includes('127.0.0.1') ? 'destination 127.0.0.1 is a loopback address' : null);
    const input = webpush({ endpoint: 'https://127.0.0.1/push' });
    expect(refusedFields(input, check)).toEqual(['token.endpoint']);
    expect(() => parseDeviceRequest(input, check)).toThrow(/token\.endpoint: destination 127\.0\.0\.1/);
    expect(parseDeviceRequest(input).provider).toBe('webpush'); // without a check
  });
});

describe('stored tokens', () => {
  it('round-trip, Web Push subscriptions with a fixed key order', () => {
    const sub = parseDeviceRequest({
      provider: 'webpush',
      token: { keys: { auth: AUTH, p256dh: P256DH }, endpoint: 'https://push.example.com/sub/1' },
    });
    const stored = serialiseDeviceToken(sub);
    expect(stored).toBe(
      JSON.stringify({ endpoint: 'https://push.example.com/sub/1', keys: { p256dh: P256DH, auth: AUTH } }),
    );
    expect(parseStoredDeviceToken('webpush', stored)).toEqual(sub);
    expect(parseStoredDeviceToken('fcm', 'tok')).toEqual({ provider: 'fcm', token: 'tok' });
  });
});
