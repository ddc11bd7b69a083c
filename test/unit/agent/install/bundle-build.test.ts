import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  assertElf,
  bundleAgentCode,
  dependencyClosure,
  importedPackages,
} from '../../../../cloud/cli/agent-bundle-build.js';
import { isFleetError } from '../../../../shared/errors/index.js';
import { fleetml } from '../../../support/fleetml-cli.js';

describe('fleetml agent bundle: what goes in', () => {
  it('takes the dependency closure from the lockfile as Node resolves it (nested versions win)', () => {
    const lock = {
      packages: {
        '': {},
        'node_modules/a': { dependencies: { b: '^1', c: '^2' } },
        'node_modules/a/node_modules/c': { dependencies: {} },
        'node_modules/b': { dependencies: {}, optionalDependencies: { d: '^1' } },
        'node_modules/c': { dependencies: {} },
        'node_modules/d': {},
        'node_modules/unrelated': {},
      },
    };
    expect(dependencyClosure(lock, ['a'])).toEqual([
      'node_modules/a',
      'node_modules/a/node_modules/c',
      'node_modules/b',
      'node_modules/d',
    ]);
    expect(() => dependencyClosure(lock, ['missing'])).toThrow(/package-lock.json has no missing/);
  });

  it('names a scoped or deep import by its package and leaves out built-ins and relative paths', () => {
    const imports = [
      { path: '@datadog/sketches-js', external: true },
      { path: 'pino/file', external: true },
      { path: 'node:fs', external: true },
      { path: 'path', external: true },
      { path: './local.js', external: true },
      { path: 'zod', external: false },
    ];
    expect(importedPackages(imports)).toEqual(['@datadog/sketches-js', 'pino']);
  });

  it('takes the packages to ship from what the bundled agent imports (a new import cannot be left out)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-bundle-code-'));
    try {
      const out = join(dir, 'agent.mjs');
      const packages = await bundleAgentCode(resolve(import.meta.dirname, '../../../..'), out);
      // The latency sketch's package was missing from a hand-kept list: installed agents died on start.
      expect(packages).toEqual(expect.arrayContaining(['@datadog/sketches-js', 'onnxruntime-node', 'mqtt']));
      const code = await readFile(out, 'utf8');
      for (const name of packages) expect(code).toContain(`"${name}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses a native file built for another machine', async () => {
    const wrong = process.arch === 'x64' ? 'arm64' : 'x64';
    const error = await assertElf(process.execPath, wrong).catch((e) => e);
    expect(isFleetError(error) && error.code).toBe('INPUT_INVALID');
    expect(error.message).toContain(`is not a linux/${wrong} binary`);
    await expect(assertElf(process.execPath, process.arch as 'x64' | 'arm64')).resolves.toBeUndefined();
  });

  it('agent bundle --sqlite-addon: the given addon is checked first, before anything is built', async () => {
    const wrong = process.arch === 'x64' ? 'arm64' : 'x64';
    const hostAddon = resolve(
      import.meta.dirname,
      '../../../../node_modules/better-sqlite3/build/Release/better_sqlite3.node',
    );
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-bundle-addon-'));
    try {
      const r = await fleetml([
        'agent',
        'bundle',
        '--arch',
        wrong,
        '--sqlite-addon',
        hostAddon,
        '-o',
        join(dir, 'a.tgz'),
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`^error INPUT_INVALID: .*better_sqlite3\\.node is not a linux/${wrong} binary`, 'm'),
      );
      const missing = await fleetml([
        'agent',
        'bundle',
        '--arch',
        wrong,
        '--sqlite-addon',
        join(dir, 'none.node'),
        '-o',
        join(dir, 'b.tgz'),
      ]);
      expect(missing.stderr).toMatch(/^error FILE_NOT_FOUND: /m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
