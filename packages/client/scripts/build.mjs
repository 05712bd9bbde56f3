/**
 * Builds dist/ from src/: ESM JavaScript, .d.ts declarations and source maps, from a clean folder
 * (no stale file of a renamed module survives). TypeScript rewrites the `.ts` extensions of
 * relative imports in the JavaScript; this script does the same in the declarations, so that every
 * TypeScript version and tool reads them. Run by `npm run build`, and by `prepare` (so `npm pack`
 * and installing from a git checkout build it).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

for (const name of readdirSync(dist)) {
  if (!name.endsWith('.d.ts')) continue;
  const file = join(dist, name);
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.replace(/((?:from|import)\s*\(?\s*['"]\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1.js$2'));
}
