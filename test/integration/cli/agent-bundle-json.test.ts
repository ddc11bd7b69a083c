import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetml } from '../../support/fleetml-cli.js';

const run = promisify(execFile);

// `fleetml agent bundle --arch x64 -o FILE --json` for this machine's architecture (the arm64
// bundle and its offline install run in test/arm64/install-bundle.test.ts, opt-in): one JSON
// object that says what was written, and the file holds what it says.
describe.skipIf(process.arch !== 'x64')('fleetml agent bundle --json', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-bundle-json-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('prints out, arch, packages, nodeAbi and pinnedNode, and writes that bundle', async () => {
    const out = join(dir, 'agent.tgz');
    const r = await fleetml(['agent', 'bundle', '--arch', 'x64', '-o', out, '--json'], { timeout: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0]);
    expect(result).toEqual({
      out,
      arch: 'x64',
      packages: expect.any(Number),
      nodeAbi: process.versions.modules,
      pinnedNode: null,
    });
    expect(result.packages).toBeGreaterThan(10);
    expect((await stat(out)).size).toBeGreaterThan(1024 * 1024);
    const { stdout: listing } = await run('tar', ['-tzf', out], { maxBuffer: 1 << 26 });
    const files = listing.split('\n');
    expect(files).toContain('./bundle.json');
    expect(files).toContain('./dist/fleetml-agent.mjs');
    const shipped = new Set(
      files.filter((f) => /^\.\/node_modules\/(@[^/]+\/)?[^/@]+\/package\.json$/.test(f)),
    );
    // The count is of top-level packages; nested copies travel inside their parents.
    expect(shipped.size).toBe(result.packages);
  }, 360_000);
});
