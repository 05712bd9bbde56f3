/**
 * Unsubscribe tokens: what the `List-Unsubscribe` link of an email carries (RFC 8058). A token names
 * a user, a category and a channel, and is the only authority `POST /v1/unsubscribe` needs.
 *
 * Format: `<payload>.<signature>`, both base64url (no padding); the payload is the JSON array
 * `[1, userId, category, channel]` (1: the format's version); the signature is HMAC-SHA256 of the
 * payload text under a key derived with HKDF-SHA256 from HERALD_JWT_SECRET and the label
 * `herald unsubscribe token v1`, so that it is no user token and no user token is one. (Not the
 * webhook secret: every webhook receiver holds that one.)
 *
 * Guarantees: a token cannot be made or altered without the secret (256-bit MAC, compared in
 * constant time); verifying checks the signature before it reads the payload; a token does not
 * expire (mail stays in mailboxes for years) — rotating HERALD_JWT_SECRET revokes every one.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { HeraldError } from './errors.ts';
import { categorySchema, idSchema } from './input.ts';
import { CHANNELS, type Channel } from './types.ts';

const LABEL = 'herald unsubscribe token v1';
const VERSION = 1;
/** base64url of 32 bytes, unpadded. */
const SIGNATURE_LENGTH = 43;
/** Longer than any token Herald makes (a 200-character user id, a 120-character category). */
const MAX_TOKEN_LENGTH = 2_000;

export interface UnsubscribeSubject {
  userId: string;
  category: string;
  channel: Channel;
}

export class UnsubscribeTokens {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), LABEL, 32));
  }

  sign(s: UnsubscribeSubject): string {
    const payload = Buffer.from(JSON.stringify([VERSION, s.userId, s.category, s.channel])).toString('base64url');
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /** What a token names; HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN when it is not one this key signed. */
  verify(token: string): UnsubscribeSubject {
    const dot = token.indexOf('.');
    const payload = token.slice(0, dot);
    const signature = token.slice(dot + 1);
    if (
      token.length > MAX_TOKEN_LENGTH ||
      dot <= 0 ||
      signature.length !== SIGNATURE_LENGTH ||
      !/^[A-Za-z0-9_-]+$/.test(signature)
    ) {
      throw invalid('is not an unsubscribe token');
    }
    const given = Buffer.from(signature, 'base64url');
    const expected = this.mac(payload);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw invalid('was not signed by this Herald (or was altered)');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw invalid('has an unreadable payload');
    }
    if (!Array.isArray(parsed) || parsed[0] !== VERSION || parsed.length !== 4) {
      throw invalid('has a payload of an unknown format');
    }
    const [, userId, category, channel] = parsed as unknown[];
    if (
      !idSchema.safeParse(userId).success ||
      !categorySchema.safeParse(category).success ||
      !CHANNELS.includes(channel as Channel)
    ) {
      throw invalid('names no valid user, category and channel');
    }
    return { userId: userId as string, category: category as string, channel: channel as Channel };
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest();
  }
}

function invalid(why: string): HeraldError {
  return new HeraldError('HERALD_ERR_INVALID_UNSUBSCRIBE_TOKEN', `the unsubscribe token ${why}`);
}
