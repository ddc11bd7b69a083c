import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleAgentCode } from '../../cloud/cli/agent-bundle-build.js';

/** Helpers of the arm64 tests: the QEMU setup, a tree of this checkout on arm64 modules, processes. */

export const ROOT = resolve(import.meta.dirname, '../..');
export const BOARDS = join(ROOT, 'test/fixtures/boards');
/** Emulation runs JavaScript 5-12x and kernels 100-400x slower: every wait is sized for it. */
export const EMULATED_MS = 12 * 60_000;

/**
 * QEMU 7.2 (Debian 12) shows the host's x86 /proc/cpuinfo, on which onnxruntime's CPU detection
 * crashes: arm64 processes (and their children) run in a private mount namespace with the
 * board's own cpuinfo bound over /proc/cpuinfo, as on the device.
 */
export function withBoardCpuinfo(
  board: string,
  command: string,
  args: string[],
  target = '/proc/cpuinfo',
): [string, string[]] {
  if (!board) return [command, args];
  const cpuinfo = join(BOARDS, board, 'proc/cpuinfo');
  const script = 'mount --bind "$0" "$1" && shift && exec "$@"';
  return ['unshare', ['--mount', 'sh', '-c', script, cpuinfo, target, command, ...args]];
}

export type Arm64Setup = { node: string; modules: string; setupMs: number } | { skip: string };

/**
 * Runs scripts/ci/arm64-setup.sh (seconds when its cache is warm) and reads what it wrote: the
 * arm64 Node and node_modules, or the reason the arm64 tests cannot run on this machine.
 */
export async function prepareArm64(): Promise<Arm64Setup> {
  const started = Date.now();
  const result = await new Promise<{ stdout: string; failure: string | null }>((done) => {
    execFile(
      join(ROOT, 'scripts/ci/arm64-setup.sh'),
      { timeout: 30 * 60_000, maxBuffer: 16 << 20 },
      (error, stdout, stderr) =>
        done({ stdout, failure: error ? `arm64-setup.sh failed: ${stderr.slice(-2000)}` : null }),
    );
  });
  // A failing setup is a failure, not a skip: only a machine without binfmt may skip.
  if (result.failure) throw new Error(result.failure);
  const env = Object.fromEntries(
    result.stdout
      .split('\n')
      .filter((l) => l.startsWith('FLEETML_ARM64_'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  if (env.FLEETML_ARM64_SKIP) return { skip: env.FLEETML_ARM64_SKIP };
  if (!env.FLEETML_ARM64_NODE || !env.FLEETML_ARM64_MODULES)
    throw new Error(`arm64-setup.sh said: ${result.stdout}`);
  return { node: env.FLEETML_ARM64_NODE, modules: env.FLEETML_ARM64_MODULES, setupMs: Date.now() - started };
}

/**
 * This checkout's sources (not its x64 node_modules) with the arm64 node_modules beside them,
 * and the agent as a device runs it: `dist/fleetml-agent.mjs`, bundled here by esbuild as
 * `fleetml agent bundle` does (tsx would transpile every file under emulation: minutes).
 */
export async function arm64Tree(modules: string): Promise<string> {
  const tree = await mkdtemp(join(tmpdir(), 'fleetml-arm64-tree-'));
  for (const entry of ['agent', 'shared', 'cloud', 'bin', 'package.json', 'tsconfig.json']) {
    await cp(join(ROOT, entry), join(tree, entry), { recursive: true });
  }
  await bundleAgentCode(ROOT, join(tree, AGENT_ENTRY));
  await symlink(modules, join(tree, 'node_modules'), 'dir');
  return tree;
}

/** The device's agent entry point in an arm64Tree (plain node, no loader). */
export const AGENT_ENTRY = 'dist/fleetml-agent.mjs';

/** A child process with its output lines kept (JSON log lines parsed). */
export class Arm64Process {
  readonly lines: string[] = [];
  readonly logs: Array<Record<string, unknown>> = [];
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(node: string, cwd: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(node, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts.filter(Boolean)) {
        this.lines.push(line);
        if (line.startsWith('{')) {
          try {
            this.logs.push(JSON.parse(line));
          } catch {}
        }
      }
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    await this.exited;
    clearTimeout(timer);
  }

  tail(n = 30): string {
    return this.lines.slice(-n).join('\n');
  }
}

/** Runs `node -e script args...` under the arm64 Node and returns its stdout. */
export function runArm64Script(
  node: string,
  cwd: string,
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<string> {
  return new Promise((done, fail) => {
    const [command, argv] = withBoardCpuinfo('rpi5', node, ['-e', script, ...args]);
    execFile(
      command,
      argv,
      { cwd, env: { ...process.env, ...env }, timeout: EMULATED_MS, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => (error ? fail(new Error(`${error.message}\n${stderr}`)) : done(stdout)),
    );
  });
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  ms = EMULATED_MS,
  onTimeout: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value as T;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}\n${onTimeout()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
