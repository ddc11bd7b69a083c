import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'bin/fleetml.mjs');
const THIRTY_TWO_BIT = join(ROOT, 'test/fixtures/boards/rpi-os-32bit');
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

function fleetml(args: string[], env: NodeJS.ProcessEnv = {}) {
  return new Promise<{ code: number | null; stderr: string }>((done) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (error, _out, stderr) => done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

describe('a 32-bit ARM OS gets a clear refusal from the agent', () => {
  it.each([
    ['--facts-root', (dir: string) => [`--facts-root=${THIRTY_TWO_BIT}`, `--data-dir=${dir}`], {}],
    ['FLEETML_FACTS_ROOT', (dir: string) => [`--data-dir=${dir}`], { FLEETML_FACTS_ROOT: THIRTY_TWO_BIT }],
  ])(
    'agent start with %s',
    async (_how, args, env) => {
      const dir = await mkdtemp(join(tmpdir(), 'fleetml-32bit-'));
      dirs.push(dir);
      // The cloud URL points nowhere: the refusal must come before any connection attempt.
      const { code, stderr } = await fleetml(
        ['agent', 'start', '--cloud=mqtt://127.0.0.1:9', ...args(dir)],
        env,
      );
      expect(code).toBe(1);
      expect(stderr).toContain('error PLATFORM_UNSUPPORTED');
      expect(stderr).toContain('Install the 64-bit OS');
    },
    90_000,
  );
});
