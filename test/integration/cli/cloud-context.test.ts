import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cloudPointerPath,
  DEFAULT_API_URL,
  resolveCloudContext,
  writeCloudPointer,
} from '../../../cloud/cli/cloud-context.js';
import { consoleLink } from '../../../cloud/cli/console-link.js';
import { isFleetError } from '../../../shared/errors/index.js';
import { waitFor } from '../e2e/fleet-harness.js';

// Issue 14: `tokens enroll --uses 10` after `cloud start --data-dir /var/lib/fleetml-cloud` failed
// for want of --data-dir or --token. The cloud now notes where it runs for its user's commands.
const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'bin/fleetml.mjs');

describe('which cloud a command talks to', () => {
  let dir: string;
  const env = (home: string): NodeJS.ProcessEnv => ({ HOME: home });
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-context-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const cloudDir = async (name: string, token: string) => {
    const path = join(dir, name);
    await mkdir(path, { recursive: true });
    await writeFile(join(path, 'admin-token'), `${token}\n`, { mode: 0o600 });
    return path;
  };

  it('keeps the note under XDG_STATE_HOME, else ~/.local/state', () => {
    expect(cloudPointerPath({ HOME: '/home/ann' })).toBe('/home/ann/.local/state/fleetml/cloud.json');
    expect(cloudPointerPath({ HOME: '/home/ann', XDG_STATE_HOME: '/s' })).toBe('/s/fleetml/cloud.json');
  });

  it('finds the cloud this user started, from any directory, with its API address', async () => {
    const home = join(dir, 'home-a');
    const data = await cloudDir('var-lib-cloud', 'fml_started');
    await writeCloudPointer('http://localhost:9123', data, env(home));
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(elsewhere);
    expect(await resolveCloudContext({}, { env: env(home), cwd: elsewhere })).toEqual({
      api: 'http://localhost:9123',
      token: 'fml_started',
    });
    // Flags and the environment still win, one by one.
    expect(await resolveCloudContext({ token: 'fml_flag' }, { env: env(home), cwd: elsewhere })).toEqual({
      api: 'http://localhost:9123',
      token: 'fml_flag',
    });
    expect(
      await resolveCloudContext(
        {},
        { env: { ...env(home), FLEETML_API: 'http://a:1', FLEETML_TOKEN: 'fml_env' }, cwd: elsewhere },
      ),
    ).toEqual({ api: 'http://a:1', token: 'fml_env' });
    // Another data dir named on the command line is another cloud: not this address.
    const other = await cloudDir('other-cloud', 'fml_other');
    expect(await resolveCloudContext({ dataDir: other }, { env: env(home), cwd: elsewhere })).toEqual({
      api: DEFAULT_API_URL,
      token: 'fml_other',
    });
    // A cloud data dir in the current directory (.fleetml/cloud) is nearer than the note.
    const project = join(dir, 'project');
    await cloudDir('project/.fleetml/cloud', 'fml_local');
    expect(await resolveCloudContext({}, { env: env(home), cwd: project })).toEqual({
      api: DEFAULT_API_URL,
      token: 'fml_local',
    });
  });

  it('says what to do when it finds no token (UNAUTHORIZED, never a crash)', async () => {
    const error = await resolveCloudContext({}, { env: env(join(dir, 'nobody')), cwd: dir }).catch((e) => e);
    expect(isFleetError(error) && error.code).toBe('UNAUTHORIZED');
    expect(error.message).toMatch(/no API token: no \S+admin-token and no cloud started by this user/);
    expect(error.message).toContain('--data-dir');
    expect(error.message).toContain('FLEETML_TOKEN');
    const named = await resolveCloudContext({ dataDir: join(dir, 'typo') }, { env: {}, cwd: dir }).catch(
      (e) => e,
    );
    expect(named.message).toContain('is --data-dir the directory the cloud was started with?');
  });

  it.skipIf(process.getuid?.() === 0)('names a token file it may not read', async () => {
    const data = await cloudDir('root-owned', 'fml_secret');
    await chmod(join(data, 'admin-token'), 0o000);
    const error = await resolveCloudContext({ dataDir: data }, { env: {}, cwd: dir }).catch((e) => e);
    expect(error.code).toBe('UNAUTHORIZED');
    expect(error.message).toMatch(/cannot read \S+admin-token \(permission denied\): run as the user/);
  });

  it('links the console on the host name when the cloud listens on every interface', () => {
    expect(consoleLink('http://0.0.0.0:8080', 'fml_a/b', 'cloud.lan')).toBe(
      'http://cloud.lan:8080/#token=fml_a%2Fb',
    );
    expect(consoleLink('http://localhost:41234', 'fml_x')).toBe('http://localhost:41234/#token=fml_x');
  });
});

describe('cloud start --http-host, then tokens enroll --uses 10 with no flags', () => {
  let dir: string;
  let cloud: ChildProcess;
  let output = '';
  const baseEnv = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, HOME: join(dir, 'home') };
    for (const key of ['XDG_STATE_HOME', 'FLEETML_TOKEN', 'FLEETML_API']) delete e[key];
    return e;
  };
  const cli = (args: string[], env: NodeJS.ProcessEnv, cwd: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
      execFile(process.execPath, [BIN, ...args], { env, cwd, timeout: 120_000 }, (error, stdout, stderr) =>
        done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-start-'));
    await mkdir(join(dir, 'elsewhere'), { recursive: true });
    // 127.0.0.2 is loopback too: an interface other than the default 127.0.0.1.
    cloud = spawn(
      process.execPath,
      [
        BIN,
        ...['cloud', 'start', '--data-dir', join(dir, 'cloud'), '--http-host', '127.0.0.2'],
        ...['--http-port', '0', '--mqtt-port', '0', '--insecure-plain-mqtt'],
      ],
      { env: baseEnv(), cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    cloud.stdout?.on('data', (c) => {
      output += c;
    });
    cloud.stderr?.on('data', (c) => {
      output += c;
    });
    await waitFor('cloud start', () => /^token: /m.test(output), 90_000).catch((error) => {
      throw new Error(`${error.message}\n${output}`);
    });
  }, 120_000);
  afterAll(async () => {
    if (cloud && cloud.exitCode === null) {
      const exited = new Promise((r) => cloud.once('exit', r));
      cloud.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('listens where --http-host says and prints a link carrying the admin token', async () => {
    const link = /^console: (\S+)$/m.exec(output)![1];
    const token = /^token: (\S+)$/m.exec(output)![1];
    expect(link).toMatch(/^http:\/\/127\.0\.0\.2:\d+\/#token=fml_/);
    const response = await fetch(new URL('/api/devices', link), {
      headers: { authorization: `Bearer ${decodeURIComponent(link.split('#token=')[1])}` },
    });
    expect(response.status).toBe(200);
    expect(decodeURIComponent(link.split('#token=')[1])).toBe(token);
  });

  it('finds the cloud from another directory; without the note it says what to pass', async () => {
    const enroll = await cli(['tokens', 'enroll', '--uses', '10'], baseEnv(), join(dir, 'elsewhere'));
    expect(enroll.code, enroll.stderr).toBe(0);
    expect(enroll.stdout).toMatch(/^token: enr_\S+$/m);
    const stranger = await cli(
      ['tokens', 'enroll', '--uses', '10'],
      { ...baseEnv(), HOME: join(dir, 'another-user') },
      join(dir, 'elsewhere'),
    );
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toMatch(/error UNAUTHORIZED: no API token: /);
    expect(stranger.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('forgets the note when it stops', async () => {
    const pointer = join(dir, 'home/.local/state/fleetml/cloud.json');
    expect(JSON.parse(await readFile(pointer, 'utf8')).dataDir).toBe(join(dir, 'cloud'));
    const exited = new Promise((r) => cloud.once('exit', r));
    cloud.kill('SIGTERM');
    await exited;
    await expect(readFile(pointer)).rejects.toThrow(/ENOENT/);
  }, 60_000);
});
