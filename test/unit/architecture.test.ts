import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The dependency rules of the layout, checked mechanically: shared/ is pure and depends on
// neither side; agent/ and cloud/ never import each other; nothing imports scripts/ or test/.
const ROOT = resolve(import.meta.dirname, '../..');
const FORBIDDEN: Record<string, string[]> = {
  shared: ['agent', 'cloud', 'scripts', 'test', 'bin'],
  agent: ['cloud', 'scripts', 'test', 'bin'],
  cloud: ['agent', 'scripts', 'test', 'bin'],
};
const IMPORT_RE = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : sourceFiles(path);
    return /\.(ts|mts|js|mjs)$/.test(name) ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT_RE)].map((m) => m[1] ?? m[2]).filter((s) => s.startsWith('.'));
}

describe('layout dependency rules', () => {
  for (const [area, banned] of Object.entries(FORBIDDEN)) {
    it(`${area}/ imports nothing from ${banned.join(', ')}`, () => {
      const violations: string[] = [];
      for (const file of sourceFiles(join(ROOT, area))) {
        for (const spec of importsOf(file)) {
          const target = relative(ROOT, resolve(file, '..', spec)).split('/')[0];
          if (banned.includes(target)) violations.push(`${relative(ROOT, file)} -> ${spec}`);
        }
      }
      expect(violations).toEqual([]);
    });
  }

  it('the checker sees a violation when there is one', () => {
    const fake = join(ROOT, 'shared', 'x.ts');
    const target = relative(ROOT, resolve(fake, '..', '../cloud/onnx/io.js')).split('/')[0];
    expect(FORBIDDEN.shared).toContain(target);
  });
});
