import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import base from '../../../vitest.config.js';
import pgConfig from '../../../vitest.pg.config.js';
import { freePort } from '../../integration/agent/mosquitto.js';

const ROOT = resolve(import.meta.dirname, '../../..');

// `npm test` is three vitest passes (README, docs/test-backends.md): the suite on the embedded
// defaults, the fleet files again on PostgreSQL + Mosquitto, then the serial restart tests.
describe('the passes of npm test', () => {
  it('npm test runs lint, typecheck, the default pass, the pg-mosquitto pass and the serial pass', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    const steps = (pkg.scripts.test as string).split('&&').map((s) => s.trim());
    expect(steps).toEqual([
      'npm run lint',
      'npm run typecheck',
      'vitest run',
      'npm run test:pg',
      'npm run test:serial',
    ]);
    expect(pkg.scripts['test:pg']).toBe('vitest run --config vitest.pg.config.ts');
    expect(pkg.scripts['test:serial']).toBe('vitest run --config vitest.serial.config.ts');
  });

  it('the pg-mosquitto pass keeps the suite state home and sets the backend', async () => {
    const config = await pgConfig({ command: 'serve', mode: 'test' });
    expect(config.test?.env?.FLEETML_TEST_BACKEND).toBe('pg-mosquitto');
    expect(config.test?.env).toMatchObject(base.test?.env ?? { missing: 'base env' });
    expect(config.test?.env?.XDG_STATE_HOME).toBeTruthy();
  });

  it('skips the pg-mosquitto pass, saying why, when PostgreSQL does not answer (outside CI)', async () => {
    // A port nothing listens on: the pass must end green with a reason, not fail in every file.
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env))
      if (!key.startsWith('VITEST') && key !== 'CI') env[key] = value;
    env.FLEETML_TEST_POSTGRES = `postgres://nobody:x@127.0.0.1:${await freePort()}/none`;
    const child = spawn(
      process.execPath,
      [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'vitest.pg.config.ts'],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    for (const stream of [child.stdout, child.stderr]) stream.on('data', (d) => (output += String(d)));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(output).toMatch(
      /test:pg skipped \(FLEETML_TEST_BACKEND=pg-mosquitto pass\): PostgreSQL not reachable/,
    );
    expect(output).not.toMatch(/nobody:x@/);
    expect(code).toBe(0);
  }, 120_000);
});
