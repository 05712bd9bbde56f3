/**
 * Secrets that were not configured are generated on first start and kept in the data dir
 * (secrets.json, mode 0600), so a restart keeps the same API key, JWT secret and webhook secret.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.ts';

export interface Secrets {
  apiKeys: string[];
  jwtSecret: string;
  webhookSecret: string;
  /** Which of them were generated (and so should be printed for the operator). */
  generated: { apiKey: boolean; jwtSecret: boolean; webhookSecret: boolean };
}

interface Persisted {
  apiKey?: string;
  jwtSecret?: string;
  webhookSecret?: string;
}

export function resolveSecrets(config: Config): Secrets {
  const file = join(config.dataDir, 'secrets.json');
  let kept: Persisted = {};
  try {
    kept = JSON.parse(readFileSync(file, 'utf8')) as Persisted;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  const next: Persisted = {
    apiKey: kept.apiKey ?? `hk_${randomBytes(24).toString('base64url')}`,
    jwtSecret: kept.jwtSecret ?? randomBytes(32).toString('base64url'),
    webhookSecret: kept.webhookSecret ?? `whsec_${randomBytes(24).toString('base64')}`,
  };
  const needed = !config.apiKeys || !config.jwtSecret || !config.webhookSecret;
  if (
    needed &&
    (next.apiKey !== kept.apiKey || next.jwtSecret !== kept.jwtSecret || next.webhookSecret !== kept.webhookSecret)
  ) {
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(file, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  }
  return {
    apiKeys: config.apiKeys ?? [next.apiKey as string],
    jwtSecret: config.jwtSecret ?? (next.jwtSecret as string),
    webhookSecret: config.webhookSecret ?? (next.webhookSecret as string),
    generated: { apiKey: !config.apiKeys, jwtSecret: !config.jwtSecret, webhookSecret: !config.webhookSecret },
  };
}
