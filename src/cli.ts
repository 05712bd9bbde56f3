/**
 * The `herald` command: `herald start` runs every role in one process; `herald send` posts a
 * notification to a running Herald (handy from a terminal); `herald --version`.
 *
 * What it prints for people never holds a secret (src/redact.ts): configuration errors and the
 * reasons Herald cannot start go through `redact`; a generated API key is printed once, on the
 * start that generated it, and later starts say where it is kept. Failures the operator can fix
 * (port taken, database unreachable, data directory in use, roles refused) are one line naming the
 * setting, exit code 2, no stack trace.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { type Config, loadConfig, SETTINGS } from './config.ts';
import { ConfigError } from './config-error.ts';
import { idempotencyKeySchema } from './core/input.ts';
import { CHANNELS, LANES } from './core/types.ts';
import { type Herald, ROLES, type Role, startHerald } from './herald.ts';
import { redact, secretsIn } from './redact.ts';
import { StartupError } from './wiring.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('herald')
  .description('Herald — notification delivery')
  .version(pkg.version, '-v, --version', 'print the version');

const settingsHelp = SETTINGS.map(
  (s) =>
    `  ${s.name.padEnd(31)} ${s.description}\n  ${''.padEnd(31)} default: ${s.default}${s.secret ? ' (secret: never printed)' : ''}`,
).join('\n');

program
  .command('start')
  .description('run Herald (all roles in one process unless --role is given)')
  .addOption(new Option('--role <roles>', `comma-separated roles: ${ROLES.join(', ')}`).default(ROLES.join(',')))
  .addHelpText('after', `\nSettings (environment):\n${settingsHelp}`)
  .action(async (opts: { role: string }) => {
    const roles = opts.role
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean);
    const bad = roles.filter((r) => !ROLES.includes(r as Role));
    if (bad.length || !roles.length) {
      fail(
        `--role: ${bad.length ? `unknown role(s) ${bad.join(', ')}` : 'no role given'}; allowed: ${ROLES.join(', ')}`,
      );
    }
    let config: Config;
    try {
      config = loadConfig();
    } catch (e) {
      fail(e instanceof ConfigError ? e.message : redactForPeople(String(e)));
    }
    const herald = await startHerald(config, { roles: roles as Role[] }).catch((e: unknown) =>
      fail(`cannot start: ${redactForPeople(explainStartFailure(e, config))}`),
    );
    let signals = 0;
    const shutdown = (sig: string) => {
      if (++signals > 1) process.exit(1);
      herald.logger.info({ signal: sig }, 'shutting down');
      herald.stop().then(
        () => process.exit(0),
        (e: unknown) => {
          herald.logger.error({ err: e }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    // The banner last: whoever waits for it (a supervisor, a test) may stop Herald at once, and a
    // signal arriving between the banner and the handlers would kill it without a clean stop.
    process.stdout.write(`\n${banner(herald).join('\n')}\n\n`);
  });

program
  .command('send')
  .description('send a notification through a running Herald (give at least one of --title, --body, --data)')
  .requiredOption('--to <users>', 'comma-separated user ids')
  .option('--title <title>', 'title')
  .option('--body <body>', 'body')
  .option('--data <json>', 'data: a JSON object, e.g. \'{"postId": 42}\'')
  .option('--category <category>', 'category', 'cli.test')
  .addOption(new Option('--priority <priority>', 'priority').choices(LANES).default('normal'))
  .option('--channels <channels>', `comma-separated: ${CHANNELS.join(', ')}`, 'in_app')
  .option('--send-at <time>', 'deliver at this ISO 8601 time (e.g. 2026-12-01T09:00:00Z) instead of now')
  .option('--idempotency-key <key>', 'the same key again within 24 hours sends nothing new')
  .option('--url <url>', 'Herald base URL', `http://127.0.0.1:${process.env.PORT ?? 8080}`)
  .option('--key <key>', 'API key (default: HERALD_API_KEYS or the generated key in the data dir)')
  .action(async (o: Record<string, string | undefined>) => {
    const data = o.data === undefined ? undefined : parseData(o.data);
    if (o.title === undefined && o.body === undefined && data === undefined) {
      fail('nothing to send: give --title, --body or --data (a notification with none of them would be empty)');
    }
    if (o.sendAt !== undefined && !z.iso.datetime({ offset: true }).safeParse(o.sendAt).success) {
      fail(`--send-at: "${o.sendAt}" is not an ISO 8601 date-time with a time zone, e.g. 2026-12-01T09:00:00Z`);
    }
    if (o.idempotencyKey !== undefined) {
      const r = idempotencyKeySchema.safeParse(o.idempotencyKey);
      if (!r.success) fail(`--idempotency-key: ${r.error.issues[0]?.message ?? 'invalid'}`);
    }
    const key = o.key ?? process.env.HERALD_API_KEYS?.split(',')[0] ?? generatedKey();
    if (!key) fail('no API key: pass --key, set HERALD_API_KEYS, or run from the folder that holds .herald/');
    const res = await fetch(`${o.url}/v1/notifications`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        ...(o.idempotencyKey === undefined ? {} : { 'idempotency-key': o.idempotencyKey }),
      },
      body: JSON.stringify({
        to: String(o.to).split(','),
        category: o.category,
        priority: o.priority,
        channels: String(o.channels).split(','),
        title: o.title ?? null,
        body: o.body ?? null,
        ...(data === undefined ? {} : { data }),
        ...(o.sendAt === undefined ? {} : { sendAt: o.sendAt }),
      }),
    }).catch((e: Error) => fail(`cannot reach ${redactForPeople(String(o.url))}: ${e.message}`));
    const text = await res.text();
    process.stdout.write(`${res.status} ${text}\n`);
    process.exit(res.ok ? 0 : 1);
  });

/** The lines printed once Herald runs: where it listens (the address actually bound), the key. */
function banner(herald: Herald): string[] {
  const { secrets, listening, url } = herald;
  const store = herald.adapters.description.store;
  const lines: string[] = [];
  lines.push(
    listening.allInterfaces
      ? `Herald is listening on every interface, port ${listening.port} (${listening.address}): ${url} on this machine  (store: ${store})`
      : `Herald is listening on ${url}  (store: ${store})`,
  );
  if (secrets.created.apiKey) {
    lines.push(
      `API key: ${secrets.apiKeys[0]}   (generated now and kept in ${secrets.file}; printed only on this first start)`,
    );
  } else if (secrets.generated.apiKey) {
    lines.push(
      `API key: kept in ${secrets.file} (generated on the first start; set HERALD_API_KEYS to choose your own)`,
    );
  }
  if (url) lines.push(`API docs: ${url}/docs`);
  return lines;
}

/** A start-up failure as one line that names the setting to change. */
function explainStartFailure(e: unknown, config: Config): string {
  if (e instanceof StartupError || !(e instanceof Error)) return e instanceof Error ? e.message : String(e);
  const { code, syscall } = e as NodeJS.ErrnoException;
  if (syscall === 'listen' || syscall === 'getaddrinfo' || code === 'EADDRINUSE') {
    if (code === 'EADDRINUSE') {
      return (
        `PORT ${config.port} is in use (EADDRINUSE) on ${config.host}: stop what listens there, or set PORT to a ` +
        'free port (PORT=0 picks one)'
      );
    }
    if (code === 'EACCES') {
      return `PORT ${config.port} may not be opened by this user (EACCES): use a port above 1023, or run with the privilege to bind it`;
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return `HOST ${config.host} is not an address of this machine (${code}): use 127.0.0.1, 0.0.0.0 for every interface, or one of its addresses`;
    }
  }
  return e.message;
}

/** Hides every configured secret and every URL's credentials (src/redact.ts). */
function redactForPeople(text: string): string {
  return redact(text, { secrets: secretsIn(process.env) });
}

function parseData(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail(`--data: not valid JSON (${(e as Error).message}); give an object, e.g. '{"postId": 42}'`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(
      `--data: must be a JSON object, e.g. '{"postId": 42}', not ${Array.isArray(value) ? 'an array' : String(value)}`,
    );
  }
  return value as Record<string, unknown>;
}

function generatedKey(): string | undefined {
  try {
    const dir = process.env.HERALD_DATA_DIR || './.herald';
    return (JSON.parse(readFileSync(join(dir, 'secrets.json'), 'utf8')) as { apiKey?: string }).apiKey;
  } catch {
    return undefined;
  }
}

function fail(message: string): never {
  process.stderr.write(`herald: ${message}\n`);
  process.exit(2);
}

await program.parseAsync();
