/**
 * The `herald` command: `herald start` runs every role in one process; `herald send` posts a
 * notification to a running Herald (handy from a terminal).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, SETTINGS } from './config.ts';
import { CHANNELS, LANES } from './core/types.ts';
import { ROLES, type Role, startHerald } from './herald.ts';

const program = new Command('herald').description('Herald — notification delivery');

program
  .command('start')
  .description('run Herald (all roles in one process unless --role is given)')
  .addOption(new Option('--role <roles>', `comma-separated roles: ${ROLES.join(', ')}`).default(ROLES.join(',')))
  .addHelpText(
    'after',
    `\nSettings (environment):\n${SETTINGS.map((s) => `  ${s.name.padEnd(28)} ${s.description}`).join('\n')}`,
  )
  .action(async (opts: { role: string }) => {
    const roles = opts.role.split(',').map((r) => r.trim());
    const bad = roles.filter((r) => !ROLES.includes(r as Role));
    if (bad.length) fail(`--role: unknown role(s) ${bad.join(', ')}; allowed: ${ROLES.join(', ')}`);
    let config: ReturnType<typeof loadConfig>;
    try {
      config = loadConfig();
    } catch (e) {
      fail(e instanceof ConfigError ? e.message : String(e));
    }
    // Start-up failures the operator can fix (data directory in use, port taken, database
    // unreachable) are stated in one line, without a stack trace.
    const herald = await startHerald(config, { roles: roles as Role[] }).catch((e: unknown) =>
      fail(`cannot start: ${e instanceof Error ? e.message : String(e)}`),
    );
    if (herald.url) {
      const lines = [`Herald is listening on ${herald.url}  (store: ${herald.adapters.description.store})`];
      if (herald.secrets.generated.apiKey) {
        lines.push(
          `API key: ${herald.secrets.apiKeys[0]}   (generated; kept in ${join(config.dataDir, 'secrets.json')})`,
        );
      }
      lines.push(`API docs: ${herald.url}/docs`);
      process.stdout.write(`\n${lines.join('\n')}\n\n`);
    }
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
  });

program
  .command('send')
  .description('send a notification through a running Herald')
  .requiredOption('--to <users>', 'comma-separated user ids')
  .option('--title <title>', 'title')
  .option('--body <body>', 'body')
  .option('--category <category>', 'category', 'cli.test')
  .addOption(new Option('--priority <priority>', 'priority').choices(LANES).default('normal'))
  .option('--channels <channels>', `comma-separated: ${CHANNELS.join(', ')}`, 'in_app')
  .option('--url <url>', 'Herald base URL', `http://127.0.0.1:${process.env.PORT ?? 8080}`)
  .option('--key <key>', 'API key (default: HERALD_API_KEYS or the generated key in the data dir)')
  .action(async (o: Record<string, string>) => {
    const key = o.key ?? process.env.HERALD_API_KEYS?.split(',')[0] ?? generatedKey();
    if (!key) fail('no API key: pass --key, set HERALD_API_KEYS, or run from the folder that holds .herald/');
    const res = await fetch(`${o.url}/v1/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        to: String(o.to).split(','),
        category: o.category,
        priority: o.priority,
        channels: String(o.channels).split(','),
        title: o.title ?? null,
        body: o.body ?? null,
      }),
    }).catch((e: Error) => fail(`cannot reach ${o.url}: ${e.message}`));
    const text = await res.text();
    process.stdout.write(`${res.status} ${text}\n`);
    process.exit(res.ok ? 0 : 1);
  });

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
