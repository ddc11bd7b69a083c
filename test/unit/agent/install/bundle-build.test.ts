import { describe, expect, it } from 'vitest';
import { assertElf, dependencyClosure } from '../../../../cloud/cli/agent-bundle-build.js';
import { isFleetError } from '../../../../shared/errors/index.js';

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

  it('refuses a native file built for another machine', async () => {
    const wrong = process.arch === 'x64' ? 'arm64' : 'x64';
    const error = await assertElf(process.execPath, wrong).catch((e) => e);
    expect(isFleetError(error) && error.code).toBe('INPUT_INVALID');
    expect(error.message).toContain(`is not a linux/${wrong} binary`);
    await expect(assertElf(process.execPath, process.arch as 'x64' | 'arm64')).resolves.toBeUndefined();
  });
});
