import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook, webhookKey } from './webhook-signature.ts';

const SECRET = `whsec_${Buffer.from('a fixed test key of 32 bytes....').toString('base64')}`;
const ID = 'msg_2mQ8b1Xz';
const TS = 1_767_225_600;
const BODY = '{"type":"notification","id":"n-1","title":"Hi ✓","data":{"x":[1,2]}}';

/**
 * The Standard Webhooks algorithm written out independently of the code under test: HMAC-SHA256
 * over "id.timestamp.body", keyed with the base64 decoding of what follows "whsec_", base64 output
 * prefixed by "v1,".
 */
function referenceSignature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const mac = createHmac('sha256', key)
    .update(Buffer.from(`${id}.${timestamp}.${body}`, 'utf8'))
    .digest();
  return `v1,${mac.toString('base64')}`;
}

describe('webhook signatures', () => {
  it('decodes the key from the base64 after whsec_', () => {
    expect(webhookKey(SECRET).toString('utf8')).toBe('a fixed test key of 32 bytes....');
  });

  it('matches the algorithm computed independently with node:crypto', () => {
    const key = webhookKey(SECRET);
    expect(signWebhook(key, ID, TS, BODY)).toBe(referenceSignature(SECRET, ID, TS, BODY));
    for (let i = 0; i < 20; i++) {
      const secret = `whsec_${randomBytes(24 + i).toString('base64')}`;
      const body = JSON.stringify({ n: i, s: randomBytes(i * 7).toString('hex'), e: 'émoji 🎉' });
      expect(signWebhook(webhookKey(secret), `id-${i}`, TS + i, body)).toBe(
        referenceSignature(secret, `id-${i}`, TS + i, body),
      );
    }
  });

  it('reproduces the published Standard Webhooks test vector', () => {
    const key = webhookKey('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    const signature = signWebhook(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    expect(signature).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('verifies what it signs', () => {
    const key = webhookKey(SECRET);
    const sig = signWebhook(key, ID, TS, BODY);
    expect(sig).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(verifyWebhook(key, ID, TS, BODY, sig)).toBe(true);
  });

  it('rejects a tampered body, id or timestamp, another key, and garbage', () => {
    const key = webhookKey(SECRET);
    const sig = signWebhook(key, ID, TS, BODY);
    expect(verifyWebhook(key, ID, TS, BODY.replace('Hi', 'Ho'), sig)).toBe(false);
    expect(verifyWebhook(key, ID, TS, `${BODY} `, sig)).toBe(false);
    expect(verifyWebhook(key, `${ID}x`, TS, BODY, sig)).toBe(false);
    expect(verifyWebhook(key, ID, TS + 1, BODY, sig)).toBe(false);
    expect(verifyWebhook(webhookKey(`whsec_${randomBytes(32).toString('base64')}`), ID, TS, BODY, sig)).toBe(false);
    expect(verifyWebhook(key, ID, TS, BODY, '')).toBe(false);
    expect(verifyWebhook(key, ID, TS, BODY, sig.replace('v1,', 'v2,'))).toBe(false);
    expect(verifyWebhook(key, ID, TS, BODY, sig.slice(3))).toBe(false);
    const flipped = `${sig.slice(0, -2)}${sig.at(-2) === 'Q' ? 'g' : 'Q'}=`;
    expect(verifyWebhook(key, ID, TS, BODY, flipped)).toBe(false);
  });

  it('accepts a header of several space-separated signatures if any one is valid (key rotation)', () => {
    const key = webhookKey(SECRET);
    const oldKey = webhookKey(`whsec_${randomBytes(32).toString('base64')}`);
    const good = signWebhook(key, ID, TS, BODY);
    const stale = signWebhook(oldKey, ID, TS, BODY);
    expect(verifyWebhook(key, ID, TS, BODY, `${stale} ${good}`)).toBe(true);
    expect(verifyWebhook(key, ID, TS, BODY, `${good} ${stale}`)).toBe(true);
    expect(verifyWebhook(key, ID, TS, BODY, `v1a,abc ${good} v1,bm9wZQ==`)).toBe(true);
    expect(verifyWebhook(key, ID, TS, BODY, `${stale} v1,bm9wZQ==`)).toBe(false);
  });
});
