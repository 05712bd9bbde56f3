import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig, SETTINGS } from './config.ts';
import { ConfigError } from './config-error.ts';

describe('configuration', () => {
  it('starts with nothing set: port 8080, data in ./.herald, default lanes', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.dataDir).toBe('./.herald');
    expect(c.databaseUrl).toBeUndefined();
    expect(c.laneConcurrency).toEqual({ critical: 16, high: 16, normal: 32, bulk: 16 });
    expect(c.retry).toEqual({ baseMs: 5000, maxAttempts: 5, maxDelayMs: 3_600_000 });
  });

  it('reads every setting', () => {
    const c = loadConfig({
      PORT: '9000',
      DATABASE_URL: 'postgres://u@h/db',
      HERALD_API_KEYS: 'aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb',
      HERALD_LANE_CONCURRENCY: 'bulk=2,critical=40',
      HERALD_RETRY_BASE_MS: '10',
    });
    expect(c.port).toBe(9000);
    expect(c.apiKeys).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']);
    expect(c.laneConcurrency).toEqual({ critical: 40, high: 16, normal: 32, bulk: 2 });
    expect(c.retry.baseMs).toBe(10);
  });

  it.each([
    ['PORT', 'eighty', 'PORT'],
    ['PORT', '70000', 'PORT'],
    ['DATABASE_URL', 'mysql://x', 'postgres://'],
    ['HERALD_API_KEYS', 'short', 'at least 16'],
    ['HERALD_WEBHOOK_SECRET', 'not-a-secret', 'whsec_'],
    ['HERALD_LANE_CONCURRENCY', 'urgent=3', 'lanes: critical'],
    ['HERALD_RETRY_MAX_ATTEMPTS', '0', 'HERALD_RETRY_MAX_ATTEMPTS'],
    ['HERALD_LOG_LEVEL', 'loud', 'HERALD_LOG_LEVEL'],
  ])('refuses %s=%s naming the setting', (name, value, mention) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      expect((e as Error).message).toContain(name);
      expect((e as Error).message).toContain(mention);
    }
  });

  it('refuses a webhook timeout that could outlive the lease', () => {
    expect(() => loadConfig({ HERALD_LEASE_MS: '2000' })).toThrow(
      /HERALD_WEBHOOK_TIMEOUT_MS=10000: must be at most 1600 with HERALD_LEASE_MS=2000/,
    );
    expect(() => loadConfig({ HERALD_LEASE_MS: '30000', HERALD_WEBHOOK_TIMEOUT_MS: '28001' })).toThrow(/at most 28000/);
    expect(loadConfig({ HERALD_LEASE_MS: '2000', HERALD_WEBHOOK_TIMEOUT_MS: '1600' }).leaseMs).toBe(2000);
  });

  it('reads the SMTP settings; HERALD_EMAIL_FROM is required with HERALD_SMTP_URL and must be one address', () => {
    expect(loadConfig({}).smtp).toBeUndefined();
    const c = loadConfig({
      HERALD_SMTP_URL: 'smtps://u:p@mail.example.com',
      HERALD_EMAIL_FROM: 'Herald <h@example.com>',
    });
    expect(c.smtp).toEqual({
      url: 'smtps://u:p@mail.example.com',
      from: 'Herald <h@example.com>',
      timeoutMs: 10_000,
      maxConnections: 8,
    });
    expect(() => loadConfig({ HERALD_SMTP_URL: 'smtp://u:p@mail.example.com' })).toThrow(
      /HERALD_EMAIL_FROM: must be set with HERALD_SMTP_URL/,
    );
    for (const bad of ['not an address', 'a@example.com, b@example.com', 'Herald <nope>']) {
      expect(() => loadConfig({ HERALD_SMTP_URL: 'smtp://h', HERALD_EMAIL_FROM: bad })).toThrow(/HERALD_EMAIL_FROM/);
    }
  });

  it('refuses a bad HERALD_SMTP_URL without showing its password', () => {
    for (const bad of ['http://u:hunter2-secret@h', 'smtp://u:hunter2-secret@', 'u:hunter2-secret@mail:25']) {
      let message = '';
      try {
        loadConfig({ HERALD_SMTP_URL: bad, HERALD_EMAIL_FROM: 'h@example.com' });
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toContain('HERALD_SMTP_URL');
      expect(message).not.toContain('hunter2-secret');
    }
  });

  it('refuses an SMTP timeout that could outlive the lease, only when SMTP is configured', () => {
    const smtp = { HERALD_SMTP_URL: 'smtp://h', HERALD_EMAIL_FROM: 'h@example.com' };
    expect(() => loadConfig({ ...smtp, HERALD_LEASE_MS: '2000', HERALD_WEBHOOK_TIMEOUT_MS: '1600' })).toThrow(
      /HERALD_SMTP_TIMEOUT_MS=10000: must be at most 1600/,
    );
    expect(loadConfig({ HERALD_LEASE_MS: '2000', HERALD_WEBHOOK_TIMEOUT_MS: '1600' }).smtp).toBeUndefined();
    const ok = { ...smtp, HERALD_LEASE_MS: '2000', HERALD_WEBHOOK_TIMEOUT_MS: '1600', HERALD_SMTP_TIMEOUT_MS: '1500' };
    expect(loadConfig(ok).smtp?.timeoutMs).toBe(1500);
  });

  it('docs/configuration.md documents exactly the settings the code reads', () => {
    const doc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]));
    expect([...documented].sort()).toEqual(SETTINGS.map((s) => s.name).sort());
  });
});
