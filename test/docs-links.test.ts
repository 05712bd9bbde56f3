/**
 * The user documentation stands alone: every relative link in README.md, docs/ and the packages'
 * READMEs points at a file of this repository that exists, and nothing refers to material outside
 * it (such as a `shared/` folder).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? markdownFiles(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
  );
}

const FILES = [
  'README.md',
  ...markdownFiles('docs'),
  ...readdirSync('packages').map((p) => join('packages', p, 'README.md')),
  'benchmarks/README.md',
].filter((f) => existsSync(f));

describe('the documentation', () => {
  it('covers the README, docs/ and the packages', () => {
    expect(FILES).toEqual(expect.arrayContaining(['README.md', 'docs/contract.md', 'packages/client/README.md']));
  });

  it.each(FILES)('%s: every relative link resolves inside the repository', (file) => {
    const text = readFileSync(file, 'utf8');
    const broken: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target || /^(https?:|mailto:|#)/.test(target)) continue;
      const path = resolve(dirname(file), decodeURIComponent(target.split('#')[0] as string));
      const inside = !relative(process.cwd(), path).startsWith('..');
      if (!inside || !existsSync(path)) broken.push(target);
    }
    expect(broken).toEqual([]);
    expect(text).not.toMatch(/\bshared\/[A-Z]+\.md/);
  });
});
