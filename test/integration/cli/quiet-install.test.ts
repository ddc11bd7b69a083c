import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Issue 14, "quiet installs": no warning on every npm command, onnxruntime-node still told to skip
// its CUDA download, no dependency that wants a newer Node, no secret printed by --help.
const ROOT = resolve(import.meta.dirname, '../../..');
const run = promisify(execFile);
const semver = createRequire(import.meta.url)('semver') as { satisfies(v: string, range: string): boolean };

describe('quiet installs', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-npmrc-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('.npmrc hands ONNXRUNTIME_NODE_INSTALL=skip to lifecycle scripts without an unknown-config warning', async () => {
    await copyFile(join(ROOT, '.npmrc'), join(dir, '.npmrc'));
    await writeFile(
      join(dir, 'package.json'),
      JSON.stringify({
        name: 'npmrc-probe',
        version: '1.0.0',
        scripts: { probe: 'node -e "console.log(\'flag=\' + process.env.ONNXRUNTIME_NODE_INSTALL)"' },
      }),
    );
    const { stdout, stderr } = await run('npm', ['run', 'probe'], { cwd: dir });
    expect(stdout).toContain('flag=skip');
    expect(stderr).not.toMatch(/Unknown (project|user|env) config/);
    // The value onnxruntime-node's install script reads as "skip the download".
    const utils = await readFile(join(ROOT, 'node_modules/onnxruntime-node/script/install-utils.js'), 'utf8');
    expect(utils).toMatch(/process\.env\.ONNXRUNTIME_NODE_INSTALL/);
    expect(utils).toMatch(/case 'skip':\s*return false;/);
  }, 60_000);

  it('locks no dependency that wants a newer Node than the one in engines', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    const minimum = /(\d+\.\d+(\.\d+)?)/.exec(pkg.engines.node)![1];
    const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8'));
    const wanting = Object.entries(lock.packages as Record<string, any>)
      .filter(([path, p]) => path && !p.optional && !p.dev && p.engines?.node)
      .filter(
        ([, p]) =>
          !semver.satisfies(minimum.split('.').length === 2 ? `${minimum}.0` : minimum, p.engines.node),
      )
      .map(([path, p]) => `${path}@${p.version} wants ${p.engines.node}`);
    expect(wanting).toEqual([]);
  });

  it('--help prints no secret from the environment', async () => {
    const secrets = {
      FLEETML_TOKEN: 'fml_do-not-print-me-0123456789',
      FLEETML_MQTT_PASSWORD: 'mqtt-do-not-print-me',
      FLEETML_ENROLL_TOKEN: 'enr_do-not-print-me',
    };
    for (const command of [
      ['models', 'add'],
      ['devices', 'tag'],
      ['tokens', 'enroll'],
      ['cloud', 'start'],
      ['agent', 'start'],
    ]) {
      const { stdout } = await run(process.execPath, [join(ROOT, 'bin/fleetml.mjs'), ...command, '--help'], {
        env: { ...process.env, ...secrets },
      });
      expect(stdout, command.join(' ')).toMatch(/Usage: fleetml /);
      for (const secret of Object.values(secrets)) expect(stdout, command.join(' ')).not.toContain(secret);
    }
    const { stdout } = await run(
      process.execPath,
      [join(ROOT, 'bin/fleetml.mjs'), 'models', 'add', '--help'],
      {
        env: { ...process.env, ...secrets },
      },
    );
    expect(stdout).toContain('--token <token>');
  }, 120_000);
});
