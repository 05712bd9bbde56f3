/**
 * Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the
 * base64-decoded part of the secret after `whsec_`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function webhookKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
}

export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** True if any of the space-separated signatures in `header` is valid for this message. */
export function verifyWebhook(key: Buffer, id: string, timestamp: number, body: string, header: string): boolean {
  const expected = Buffer.from(signWebhook(key, id, timestamp, body));
  return header.split(' ').some((sig) => {
    const got = Buffer.from(sig);
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
}
