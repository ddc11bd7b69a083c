import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The dependency rules of the layout, checked mechanically (docs/architecture.md):
// - shared/ is pure and depends on neither side; agent/ and cloud/ never import each other;
//   nothing imports scripts/, test/ or bin/;
// - inside cloud/, the compression engine (cloud/compression) knows nothing of the fleet
//   controller, the CLI or the composition root;
// - the fleet controller (cloud/fleet) reaches the engine only through its door,
//   cloud/compression/index.ts.
const ROOT = resolve(import.meta.dirname, '../..');

interface Rule {
  /** Files under this folder (repository-relative) are checked. */
  from: string;
  /** They may not import anything under these paths... */
  banned: string[];
  /** ...except these files. */
  allowed?: string[];
}

const RULES: Rule[] = [
  { from: 'shared', banned: ['agent', 'cloud', 'scripts', 'test', 'bin'] },
  { from: 'agent', banned: ['cloud', 'scripts', 'test', 'bin'] },
  { from: 'cloud', banned: ['agent', 'scripts', 'test', 'bin'] },
  {
    from: 'cloud/compression',
    banned: ['cloud/fleet', 'cloud/cli', 'cloud/main.ts', 'cloud/services.ts'],
  },
  {
    from: 'cloud/fleet',
    banned: ['cloud/compression', 'cloud/cli', 'cloud/main.ts'],
    allowed: ['cloud/compression/index.ts'],
  },
];

// Every way a module can pull in another: static and type-only imports and re-exports,
// side-effect imports (`import './x'`), dynamic import() and require().
const IMPORT_PATTERNS = [
  /(?:^|[\s;])(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]/g,
  /(?:^|[\s;])import\s*['"]([^'"]+)['"]/g,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : sourceFiles(path);
    return /\.(ts|mts|js|mjs)$/.test(name) ? [path] : [];
  });
}

function importsIn(text: string): string[] {
  return IMPORT_PATTERNS.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]));
}

/** Repository-relative path of what `spec` in `file` refers to, with `.js` read as its `.ts` source. */
function targetOf(file: string, spec: string): string {
  return relative(ROOT, resolve(file, '..', spec)).replace(/\.js$/, '.ts');
}

const under = (path: string, folder: string) => path === folder || path.startsWith(`${folder}/`);

function violations(rule: Rule, files: Array<{ file: string; text: string }>): string[] {
  const found: string[] = [];
  for (const { file, text } of files) {
    for (const spec of importsIn(text).filter((s) => s.startsWith('.'))) {
      const target = targetOf(file, spec);
      if (rule.allowed?.includes(target)) continue;
      if (rule.banned.some((b) => under(target, b))) found.push(`${relative(ROOT, file)} -> ${spec}`);
    }
  }
  return found;
}

describe('layout dependency rules', () => {
  for (const rule of RULES) {
    it(`${rule.from}/ imports nothing from ${rule.banned.join(', ')}${rule.allowed ? ` but ${rule.allowed}` : ''}`, () => {
      const files = sourceFiles(join(ROOT, rule.from)).map((file) => ({
        file,
        text: readFileSync(file, 'utf8'),
      }));
      expect(files.length).toBeGreaterThan(0);
      expect(violations(rule, files)).toEqual([]);
    });
  }

  it('the scanner finds every form of import', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "export { c } from './c.js';",
      "export * from './d.js';",
      "import './side-effect.js';",
      "const e = await import('./e.js');",
      "const f = require('./f.cjs');",
      'import {\n  g,\n  h,\n} from "./gh.js";',
    ].join('\n');
    expect(importsIn(text).sort()).toEqual(
      ['../b.js', './a.js', './c.js', './d.js', './e.js', './f.cjs', './gh.js', './side-effect.js'].sort(),
    );
  });

  it('the scanner finds the imports of real source files', () => {
    const text = readFileSync(join(ROOT, 'cloud/compression/index.ts'), 'utf8');
    expect(importsIn(text)).toContain('./describe.js');
  });

  it('each rule reports a deliberately wrong import', () => {
    const wrong: Array<[string, string]> = [
      ['shared/x.ts', '../cloud/compression/onnx/io.js'],
      ['agent/x.ts', '../cloud/fleet/store/db.js'],
      ['cloud/x.ts', '../agent/main.js'],
      ['cloud/compression/quantize/x.ts', '../../fleet/store/db.js'],
      ['cloud/compression/x.ts', '../main.js'],
      ['cloud/fleet/inventory/x.ts', '../../compression/onnx/proto.js'],
    ];
    for (const [file, spec] of wrong) {
      const rule = RULES.filter((r) => under(file, r.from)).at(-1)!;
      const found = violations(rule, [{ file: join(ROOT, file), text: `import { x } from '${spec}';` }]);
      expect(found, `${file} -> ${spec}`).toHaveLength(1);
    }
    // ...and lets the fleet through the door.
    const door = RULES.find((r) => r.from === 'cloud/fleet')!;
    const ok = violations(door, [
      {
        file: join(ROOT, 'cloud/fleet/inventory/x.ts'),
        text: "import { describeOnnx } from '../../compression/index.js';",
      },
    ]);
    expect(ok).toEqual([]);
  });
});
