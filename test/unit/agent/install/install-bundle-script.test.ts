import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SCRIPT = resolve(import.meta.dirname, '../../../../scripts/install-agent.sh');

function install(args: string[], env: NodeJS.ProcessEnv = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    execFile('bash', [SCRIPT, ...args], { env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      done({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

// The checks install-agent.sh makes on a bundle before it changes anything (the real install of
// real bundles in fresh Debian roots is test/arm64/install-bundle.test.ts).
describe('install-agent.sh --bundle: checks before any change', () => {
  let dir: string;
  const bundle = (name: string) => join(dir, name);
  const cloud = ['--cloud', 'mqtt://cloud:1883', '--token', 'tok-12345678'];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-bundle-script-'));
    const abi = process.versions.modules;
    for (const [name, arch, pinned] of [
      ['x64.tgz', 'x64', false],
      ['arm64.tgz', 'arm64', true],
    ] as const) {
      const stage = join(dir, name.replace('.tgz', ''));
      await execP('mkdir', ['-p', stage]);
      const json = { v: 1, arch, platform: 'linux', nodeAbi: abi, nodeVersion: '20.0.0', pinnedNode: pinned };
      await writeFile(join(stage, 'bundle.json'), JSON.stringify(json, null, 2));
      await execP('tar', ['-czf', bundle(name), '-C', stage, '.']);
    }
    await writeFile(bundle('junk.tgz'), 'not a tarball');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('refuses a 32-bit ARM OS and says which OS to install', async () => {
    for (const machine of ['armhf', 'armv7l']) {
      const r = await install(['--bundle', bundle('arm64.tgz'), ...cloud, '--dry-run'], {
        FLEETML_MACHINE: machine,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('32-bit ARM operating system');
      expect(r.stderr).toContain('Raspberry Pi OS (64-bit)');
    }
  });

  it('refuses a bundle built for another architecture, and a file that is no bundle', async () => {
    const wrong = await install(['--bundle', bundle('x64.tgz'), ...cloud, '--dry-run'], {
      FLEETML_MACHINE: 'arm64',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('is for linux/x64, this machine is arm64');
    const junk = await install(['--bundle', bundle('junk.tgz'), ...cloud, '--dry-run'], {
      FLEETML_MACHINE: 'arm64',
    });
    expect(junk.stderr).toContain('is not a fleetml device bundle');
  });

  it('plans an offline install: no NodeSource, no npm, no compiler; the pinned Node runs the unit', async () => {
    const r = await install(['--bundle', bundle('arm64.tgz'), ...cloud, '--dry-run'], {
      FLEETML_MACHINE: 'aarch64',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`tar -xzf ${bundle('arm64.tgz')} -C /opt/fleetml.new`);
    expect(r.stdout).not.toMatch(/nodesource|npm install|esbuild|apt-get/);
    expect(r.stdout).toMatch(
      /ExecStart=\/opt\/fleetml\/node\/bin\/node .*dist\/fleetml-agent\.mjs agent start/,
    );
  });

  it('without a pinned Node, the system Node must have the ABI the addons were built for', async () => {
    const ok = await install(['--bundle', bundle('x64.tgz'), ...cloud, '--dry-run'], {
      FLEETML_MACHINE: 'amd64',
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`ExecStart=${process.execPath} `);
  });
});

function execP(cmd: string, args: string[]): Promise<void> {
  return new Promise((done, fail) => execFile(cmd, args, (e) => (e ? fail(e) : done())));
}
