import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const SCRIPT = resolve(import.meta.dirname, '../../../scripts/install-agent.sh');
const run = (...args: string[]) => promisify(execFile)('bash', [SCRIPT, ...args]);

// The installer changes a machine, so CI checks its plan (--dry-run), not its effects.
describe('scripts/install-agent.sh', () => {
  it('documents its options', async () => {
    const { stdout } = await run('--help');
    for (const option of ['--cloud', '--token', '--data-dir', '--user', '--dry-run'])
      expect(stdout).toContain(option);
  });

  it('plans a service user, a private data dir, enrollment and a restarting unit', async () => {
    const { stdout } = await run(
      '--cloud',
      'mqtt://cloud:1883',
      '--token',
      'tok-12345678',
      '--dry-run',
      '--user',
      'fleetml-test',
    );
    expect(stdout).toContain('install -d -m 0700 -o fleetml-test -g fleetml-test /var/lib/fleetml');
    expect(stdout).toMatch(
      /runuser -u fleetml-test -- env FLEETML_ENROLL_TOKEN=tok-12345678 .* agent enroll/,
    );
    expect(stdout).toContain('"cloudUrl": "mqtt://cloud:1883"');
    expect(stdout).toContain('Restart=on-failure');
    expect(stdout).toContain('User=fleetml-test');
    expect(stdout).toContain('ReadWritePaths=/var/lib/fleetml');
    expect(stdout).toMatch(
      /ExecStart=.*dist\/fleetml-agent\.mjs agent start --config \/etc\/fleetml\/agent\.json/,
    );
  });

  it('passes --fleet-key through to the enrollment', async () => {
    const key = 'A'.repeat(43);
    const { stdout } = await run(
      '--cloud',
      'mqtt://cloud:1883',
      '--token',
      'tok-12345678',
      '--fleet-key',
      key,
      '--dry-run',
    );
    expect(stdout).toMatch(new RegExp(`FLEETML_FLEET_KEY=${key} .* agent enroll`));
  });

  it('refuses a missing or malformed cloud URL', async () => {
    await expect(run('--token', 'x', '--dry-run')).rejects.toMatchObject({
      stderr: expect.stringContaining('--cloud'),
    });
    await expect(run('--cloud', 'http://x', '--dry-run')).rejects.toMatchObject({
      stderr: expect.stringContaining('mqtt://'),
    });
  });

  it('installs Node.js 20 from NodeSource when the system Node is older (Debian 12 ships 18)', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'fleetml-oldnode-'));
    try {
      await writeFile(join(bin, 'node'), '#!/bin/sh\necho 18\n', { mode: 0o755 });
      const args = [SCRIPT, '--cloud', 'mqtt://cloud:1883', '--token', 'tok-12345678', '--dry-run'];
      const old = await promisify(execFile)('bash', args, {
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      });
      expect(old.stdout).toContain('installing Node.js 20');
      expect(old.stdout).toContain('https://deb.nodesource.com/setup_20.x');
      expect(old.stdout).toContain('apt-get install -y -qq nodejs');
      // The Node running this test is new enough: nothing to install.
      expect((await promisify(execFile)('bash', args)).stdout).not.toContain('installing Node.js');
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });
});
