/**
 * `npm run chaos -- <scenario> [--size full|short]` (or `npx tsx chaos/run.ts …`): runs one
 * scenario, prints its progress on stderr and its VERDICT line on stdout, writes
 * chaos-results/<scenario>-<size>-<time>.json, and exits 0 when the verdict passed, 1 otherwise.
 * Ctrl-C ends every Herald process the run started (cluster.ts kills them as this process exits).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Scenario, Size } from './lib.ts';
import { SCENARIOS } from './scenarios/index.ts';

const USAGE = `usage: npm run chaos -- <scenario> [--size full|short]

scenarios: ${Object.keys(SCENARIOS).join(', ')}
--size full (default) runs the scenario at its specified size; short is the size npm test runs.`;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { size: { type: 'string', default: 'full' }, help: { type: 'boolean', short: 'h' } },
});
const name = positionals[0] ?? '';
const scenario: Scenario | undefined = SCENARIOS[name];
if (values.help || !scenario || (values.size !== 'full' && values.size !== 'short')) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(values.help ? 0 : 2);
}
const size = values.size as Size;

// Signals end the run through process.exit, so that the exit hook kills the cluster.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

const started = Date.now();
const log = (line: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
let code = 1;
try {
  const result = await scenario(size, log);
  await mkdir('chaos-results', { recursive: true });
  const file = `chaos-results/${name}-${size}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  await writeFile(
    file,
    `${JSON.stringify({ scenario: name, size, seconds: (Date.now() - started) / 1000, ...result }, null, 2)}\n`,
  );
  log(`result written to ${file}`);
  code = result.pass ? 0 : 1;
} catch (e) {
  process.stdout.write(`VERDICT ${name}: FAIL: the scenario could not run: ${(e as Error).message}\n`);
  log((e as Error).stack ?? String(e));
}
process.exit(code);
