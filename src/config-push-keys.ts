/** Checks of push credentials named by the configuration (config.ts): APNs auth keys and VAPID keys. */
import { createECDH, createPrivateKey, ECDH } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from './config-error.ts';

/**
 * The APNs auth key file's PEM, checked to be a PKCS#8 P-256 private key. The message of a failure
 * names the file and what is wrong, never the file's content.
 */
export function readApnsKey(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new ConfigError(
      `invalid configuration:\n  HERALD_APNS_KEY=${JSON.stringify(path)}: cannot read the file (${typeof code === 'string' ? code : 'error'})`,
    );
  }
  let ok = false;
  try {
    const key = createPrivateKey({ key: pem, format: 'pem' });
    ok = key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    ok = false;
  }
  if (!ok || !pem.includes('-----BEGIN PRIVATE KEY-----')) {
    throw new ConfigError(
      `invalid configuration:\n  HERALD_APNS_KEY=${JSON.stringify(path)}: must be an APNs auth key ` +
        '(a .p8 file: a PKCS#8 PEM P-256 private key, as Apple hands it out)',
    );
  }
  return pem;
}

/** Why a VAPID public key is unusable, or null: it must be an uncompressed P-256 point, base64url. */
export function vapidPublicKeyProblem(key: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return 'must be base64url (A–Z, a–z, 0–9, -, _; no padding)';
  const bytes = Buffer.from(key, 'base64url');
  if (bytes.length !== 65 || bytes[0] !== 0x04) return 'must be an uncompressed P-256 point (65 bytes, 0x04 first)';
  try {
    ECDH.convertKey(bytes, 'prime256v1', undefined, undefined, 'uncompressed');
  } catch {
    return 'is not a point on the P-256 curve';
  }
  return null;
}

/** The public key of a VAPID private key; null when it is not a P-256 private key in base64url. */
export function vapidPublicKeyOf(privateKey: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(privateKey)) return null;
  const bytes = Buffer.from(privateKey, 'base64url');
  if (bytes.length !== 32) return null;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(bytes);
    return ecdh.getPublicKey().toString('base64url');
  } catch {
    return null;
  }
}
