import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// docs/claims.md lists every claim of the README, docs/*.md and the --help texts with the tests
// behind it. A renamed or deleted test file must not leave a claim pointing at nothing.
const ROOT = resolve(import.meta.dirname, '../../..');
const CLAIMS = readFileSync(resolve(ROOT, 'docs/claims.md'), 'utf8');

/** Every `test/…` path in backticks (a path followed by a note in parentheses included). */
function namedTestFiles(markdown: string): string[] {
  return [...new Set([...markdown.matchAll(/`(test\/[^`\s]+\.ts)`/g)].map((m) => m[1]))];
}

/** Table rows whose test column says MISSING. */
function missingRows(markdown: string): string[] {
  return markdown
    .split('\n')
    .filter((line) => line.startsWith('|') && /\|\s*MISSING\b[^|]*\|\s*$/.test(line));
}

describe('docs/claims.md', () => {
  it('names only test files that exist', () => {
    const files = namedTestFiles(CLAIMS);
    expect(files.length).toBeGreaterThan(50);
    expect(files.filter((f) => !existsSync(resolve(ROOT, f)))).toEqual([]);
  });

  it('leaves no claim MISSING outside the "Not yet backed" table', () => {
    const backedPart = CLAIMS.split('\n## Not yet backed')[0];
    expect(missingRows(backedPart)).toEqual([]);
  });

  it('the scanner finds paths and MISSING rows (self-test)', () => {
    const sample = [
      '| a | README | `test/unit/x.test.ts`, `test/e2e/y.browser.test.ts` (page) |',
      '| b | README | MISSING |',
      '| c | README | *figure* |',
    ].join('\n');
    expect(namedTestFiles(sample)).toEqual(['test/unit/x.test.ts', 'test/e2e/y.browser.test.ts']);
    expect(missingRows(sample)).toEqual(['| b | README | MISSING |']);
  });
});
