/**
 * A Google service-account key file (the JSON the Firebase console downloads), read and checked once
 * at start-up for what FCM HTTP v1 needs: `project_id`, `client_email`, `private_key` (a PEM RSA
 * private key) and `token_uri` (where the signed assertion is exchanged for an access token).
 *
 * Guarantees: a file that is missing, unreadable, not JSON, not a service account, or lacks one of
 * those fields (or holds a bad one) is refused with a message naming the field; no message ever
 * quotes the file's content, so the private key is never shown.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface ServiceAccount {
  projectId: string;
  clientEmail: string;
  /** PEM (PKCS#8 or PKCS#1), RSA. A secret. */
  privateKey: string;
  /** `private_key_id`, sent as the assertion's `kid` when the file has one. */
  privateKeyId: string | undefined;
  /** An http(s) URL; Google's is `https://oauth2.googleapis.com/token`. */
  tokenUri: string;
}

/** Why a service-account file is refused; the message names the file or the field, never a value of it. */
export class ServiceAccountError extends Error {
  override name = 'ServiceAccountError';
}

/** Reads and checks the file at `path`; throws ServiceAccountError. */
export function readServiceAccount(path: string): ServiceAccount {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new ServiceAccountError(`cannot read the file (${typeof code === 'string' ? code : 'unreadable'})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the text around the fault, which may be the key: not shown.
    throw new ServiceAccountError('the file is not JSON (a service-account key file from the Firebase console)');
  }
  return parseServiceAccount(json);
}

/** Checks an already parsed service-account object; throws ServiceAccountError. */
export function parseServiceAccount(json: unknown): ServiceAccount {
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new ServiceAccountError('the file does not hold a JSON object');
  }
  const o = json as Record<string, unknown>;
  if (o.type !== undefined && o.type !== 'service_account') {
    throw new ServiceAccountError(`"type" is ${JSON.stringify(String(o.type))}, not "service_account"`);
  }
  const str = (field: string): string => {
    const v = o[field];
    if (v === undefined || v === null) throw new ServiceAccountError(`"${field}" is missing`);
    if (typeof v !== 'string' || v.trim() === '')
      throw new ServiceAccountError(`"${field}" must be a non-empty string`);
    return v;
  };

  const projectId = str('project_id');
  if (!/^[A-Za-z0-9][A-Za-z0-9.:-]*$/.test(projectId)) {
    throw new ServiceAccountError('"project_id" must be a project id (letters, digits, "-", ".", ":")');
  }
  const clientEmail = str('client_email');
  if (!/^[^\s@]+@[^\s@]+$/.test(clientEmail)) throw new ServiceAccountError('"client_email" must be an email address');

  const privateKey = str('private_key');
  let keyType: string | undefined;
  try {
    keyType = createPrivateKey({ key: privateKey, format: 'pem' }).asymmetricKeyType;
  } catch {
    throw new ServiceAccountError('"private_key" is not a PEM private key');
  }
  if (keyType !== 'rsa') throw new ServiceAccountError('"private_key" must be an RSA key (RS256)');

  const tokenUri = str('token_uri');
  let url: URL | undefined;
  try {
    url = new URL(tokenUri);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.hostname === '') {
    throw new ServiceAccountError('"token_uri" must be an http:// or https:// URL');
  }

  const keyId = o.private_key_id;
  return {
    projectId,
    clientEmail,
    privateKey,
    privateKeyId: typeof keyId === 'string' && keyId !== '' ? keyId : undefined,
    tokenUri,
  };
}
