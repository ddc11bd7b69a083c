import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../e2e/fleet-harness.js';

// Issue 14: the README's "Run a fleet" commands, parsed out of README.md and run as written
// against a real cloud and two real agents on loopback, so the docs cannot drift from the code.
// What the test fills in is listed in PLACEHOLDERS; every other word runs as the README has it.
const ROOT = resolve(import.meta.dirname, '../../..');
const BIN = join(ROOT, 'bin/fleetml.mjs');
const SAMPLE = join(ROOT, 'cloud/samples/mnist-mlp.onnx');
const CHROMIUM = '/usr/bin/chromium';
const DEVICES = 2;

interface ReadmeLine {
  text: string;
  args: string[];
  /** "# on each device": run once per device, each in its own directory. */
  perDevice: boolean;
}

/** The commands of the first sh block under "### Run a fleet". */
function readmeCommands(): ReadmeLine[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Run a fleet'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .filter((line) => line.trim())
    .map((text) => {
      const [command, ...comment] = text.split(/\s+#\s+/);
      const words = command.trim().split(/\s+/);
      if (words[0] !== 'npx' || words[1] !== 'fleetml') throw new Error(`not a fleetml command: ${text}`);
      return { text, args: words.slice(2), perDevice: comment.join(' ').includes('on each device') };
    });
}

const WITH_SUBCOMMANDS = new Set(['cloud', 'tokens', 'agent', 'models', 'rollouts', 'devices']);

/** "models add", "devices tag", "devices", "deploy": what a line runs, without its arguments. */
function stepName(line: ReadmeLine): string {
  const [command, sub] = line.args;
  return WITH_SUBCOMMANDS.has(command) && sub && /^[a-z]+$/.test(sub) ? `${command} ${sub}` : command;
}

interface Filled {
  cloudDir: string;
  brokerUrl?: string;
  enrollToken?: string;
  deviceIds?: string[];
  rolloutId?: string;
  benchFiles: [string, string];
}

/**
 * The README's placeholders and what stands in for them here: a writable directory instead of
 * /var/lib, loopback instead of every interface (tests listen on 127.0.0.1 only), and the
 * values earlier commands printed.
 */
const PLACEHOLDERS: Record<string, (f: Filled) => string | undefined> = {
  '/var/lib/fleetml-cloud': (f) => f.cloudDir,
  '0.0.0.0': () => '127.0.0.1',
  'mqtts://cloud:8883': (f) => f.brokerUrl,
  'enr_…': (f) => f.enrollToken,
  'pi-kitchen-1a2b3c': (f) => f.deviceIds?.[0],
  'r-1a2b3c4d': (f) => f.rolloutId,
  'model-fp32.onnx': (f) => f.benchFiles[0],
  'model-int8.onnx': (f) => f.benchFiles[1],
};

function fill(line: ReadmeLine, filled: Filled): string[] {
  const args = line.args.map((word) => {
    const stand = PLACEHOLDERS[word];
    if (!stand) return word;
    const value = stand(filled);
    if (value === undefined)
      throw new Error(`"${word}" in "${line.text}" is used before a command printed it`);
    return value;
  });
  // Free ports: other tests run beside this one. (The README's defaults are 8080 and 8883.)
  if (args[0] === 'cloud' && args[1] === 'start') args.push('--http-port', '0', '--mqtt-port', '0');
  return args;
}

describe('README "Run a fleet", run as written', () => {
  const lines = readmeCommands();
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let filled: Filled;
  const daemons: Array<{ name: string; child: ChildProcess; output: () => string }> = [];
  const outputs = new Map<string, string>();
  let consoleLink = '';
  let api = '';
  let adminToken = '';

  const run = (args: string[], cwd: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      execFile(
        process.execPath,
        [BIN, ...args],
        { cwd, env, timeout: 300_000, maxBuffer: 16 << 20 },
        (error, stdout, stderr) =>
          done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  const startDaemon = (name: string, args: string[], cwd: string) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    const entry = { name, child, output: () => output };
    daemons.push(entry);
    return entry;
  };

  const apiGet = async (path: string) => {
    const response = await fetch(new URL(path, api), { headers: { authorization: `Bearer ${adminToken}` } });
    return (await response.json()) as any;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-readme-'));
    const home = join(dir, 'home');
    await mkdir(join(dir, 'ops'), { recursive: true });
    // The operator works in a clone: node_modules (the README's model path) is there.
    await symlink(join(ROOT, 'node_modules'), join(dir, 'ops', 'node_modules'));
    for (let i = 1; i <= DEVICES; i++) await mkdir(join(dir, `device-${i}`));
    await mkdir(home);
    env = { ...process.env, HOME: home };
    for (const key of [
      'XDG_STATE_HOME',
      'FLEETML_TOKEN',
      'FLEETML_API',
      'FLEETML_DATA_DIR',
      'FLEETML_CONFIG',
    ])
      delete env[key];
    await copyFile(SAMPLE, join(dir, 'model-fp32.onnx'));
    await copyFile(SAMPLE, join(dir, 'model-int8.onnx'));
    filled = {
      cloudDir: join(dir, 'cloud'),
      benchFiles: [join(dir, 'model-fp32.onnx'), join(dir, 'model-int8.onnx')],
    };
  });

  afterAll(async () => {
    for (const { child } of daemons.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('has the commands the walkthrough needs, in order', () => {
    const commands = lines.map(stepName);
    expect(commands[0]).toBe('cloud start');
    expect(commands).toEqual(
      expect.arrayContaining(['tokens enroll', 'devices tag', 'deploy', 'rollouts show']),
    );
    expect(lines.filter((l) => l.perDevice).map((l) => l.args.slice(0, 2).join(' '))).toEqual([
      'agent start',
    ]);
  });

  it('runs every line: devices enroll, get tagged, and the deployment goes active', async () => {
    for (const line of lines) {
      const [command, sub] = line.args;
      if (command === 'cloud' && sub === 'start') {
        const cloud = startDaemon('cloud', fill(line, filled), join(dir, 'ops'));
        const printed = await waitFor(
          'cloud start to print its addresses',
          () => /^token: (\S+)$/m.test(cloud.output()) && cloud.output(),
          90_000,
        ).catch((error) => {
          throw new Error(`${error.message}\n${cloud.output()}`);
        });
        consoleLink = /^console: (\S+)$/m.exec(printed)![1];
        adminToken = /^token: (\S+)$/m.exec(printed)![1];
        api = new URL(consoleLink).origin;
        outputs.set('cloud start', printed);
        continue;
      }
      if (command === 'agent' && sub === 'start') {
        for (let i = 1; i <= DEVICES; i++) {
          const cwd = join(dir, `device-${i}`);
          // What an operator copies to each device: the fleet CA that `tokens enroll` wrote.
          await copyFile(join(dir, 'ops', 'ca.pem'), join(cwd, 'ca.pem'));
          startDaemon(`agent-${i}`, fill(line, filled), cwd);
          // One after the other: each must enroll with the shared token and come online.
          const enrolled = await waitFor(
            `device ${i} to enroll`,
            async () => {
              const { devices } = await apiGet('/api/devices');
              return devices.filter((d: { online: boolean }) => d.online).length >= i && devices;
            },
            120_000,
          ).catch((error) => {
            throw new Error(`${error.message}\n${daemons.map((d) => d.output()).join('\n')}`);
          });
          filled.deviceIds = (enrolled as Array<{ id: string }>).map((d) => d.id);
        }
        continue;
      }
      const result = await run(fill(line, filled), join(dir, 'ops'));
      expect(result.code, `${line.text}\n${result.stderr}`).toBe(0);
      outputs.set(stepName(line), result.stdout);
      if (command === 'tokens') {
        filled.enrollToken = /^token: (enr_\S+)$/m.exec(result.stdout)?.[1];
        filled.brokerUrl = /^broker: (\S+)$/m.exec(result.stdout)?.[1];
      }
      if (command === 'deploy') filled.rolloutId = /rollouts show (r-[0-9a-f]+)/.exec(result.stdout)?.[1];
    }

    // What each step said.
    expect(consoleLink).toMatch(/^http:\/\/localhost:\d+\/#token=fml_/);
    expect(decodeURIComponent(consoleLink.split('#token=')[1])).toBe(adminToken);
    expect(filled.brokerUrl).toMatch(/^mqtts:\/\/localhost:\d+$/);
    const [tagged, untagged] = filled.deviceIds!;
    for (const id of [tagged, untagged]) expect(outputs.get('devices')).toContain(id);
    expect(outputs.get(`devices tag`)).toContain(`${tagged}  tags kitchen`);
    expect(outputs.get('models add')).toMatch(/registered m-\S+ \(ocr-cls release 1, fp32/);
    expect(outputs.get('models add')).toContain('serving shape: x=1,3,48,192');
    expect(outputs.get('rollouts show')).toMatch(new RegExp(`${filled.rolloutId}\\s+succeeded`));
    const latency = JSON.parse(outputs.get('latency')!);
    expect(latency.deviceId).toBe(tagged);
    expect(latency.bench.p50Ms).toBeGreaterThan(0);
    expect(outputs.get('bench')).toContain('model-int8.onnx');

    // The outcome: two devices enrolled under their --name; the one tagged kitchen runs ocr-cls
    // (benchmarked at its serving shape), the other was left alone by deploy --tag.
    const { devices } = await apiGet('/api/devices');
    expect(devices).toHaveLength(DEVICES);
    for (const d of devices) {
      expect(d.name).toBe('pi-kitchen');
      expect(d.online).toBe(true);
    }
    const byId = new Map(devices.map((d: { id: string }) => [d.id, d]));
    expect(byId.get(tagged)).toMatchObject({ tags: ['kitchen'], activeModel: { name: 'ocr-cls' } });
    expect(byId.get(untagged)).toMatchObject({ tags: [], activeModel: null });
    expect((await apiGet(`/api/rollouts/${filled.rolloutId}`)).status).toBe('succeeded');
    // `cloud start` noted where it runs, which is how the later commands found it.
    const pointer = JSON.parse(await readFile(join(dir, 'home/.local/state/fleetml/cloud.json'), 'utf8'));
    expect(pointer).toMatchObject({ api, dataDir: filled.cloudDir });
  }, 600_000);

  it.skipIf(!existsSync(CHROMIUM))(
    'the console link cloud start printed signs in',
    async () => {
      expect(consoleLink).not.toBe('');
      let browser: Browser | undefined;
      try {
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          args: ['--no-sandbox', '--disable-gpu'],
        });
        const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
        const page = await context.newPage();
        await page.goto(consoleLink);
        // The fleet page lists the devices: the API accepted the token from the link.
        await page.waitForSelector(`tr[data-id="${filled.deviceIds![0]}"]`, { timeout: 30_000 });
        expect(await page.evaluate("document.getElementById('login').open")).toBe(false);
        expect(page.url()).not.toContain('token=');
        // A new tab of the same browser stays signed in without the link.
        const again = await context.newPage();
        await again.goto(api);
        await again.waitForSelector(`tr[data-id="${filled.deviceIds![1]}"]`, { timeout: 30_000 });
      } finally {
        await browser?.close();
      }
    },
    120_000,
  );
});
