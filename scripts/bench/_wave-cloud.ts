import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

// One `fleetml cloud start` process for the wave-rollout benchmark, with what the benchmark
// reads of it: its printed addresses, its admin API, and its memory from /proc.

const ROOT = resolve(import.meta.dirname, '../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class CloudProcess {
  readonly child: ChildProcess;
  private readonly lines: string[] = [];

  /** `args` after `cloud start --data-dir <dataDir> --http-port 0`. */
  constructor(
    private readonly dataDir: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    /** Appends every line the cloud prints to this file too. */
    logFile?: string,
  ) {
    this.child = spawn(
      process.execPath,
      [join(ROOT, 'bin/fleetml.mjs'), 'cloud', 'start', '--data-dir', dataDir, '--http-port', '0', ...args],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, FLEETML_LOG_LEVEL: 'warn' } },
    );
    let buffered = '';
    const copy = logFile ? createWriteStream(logFile, { flags: 'a' }) : undefined;
    const onData = (chunk: Buffer) => {
      copy?.write(chunk);
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      this.lines.push(...parts);
      if (this.lines.length > 2000) this.lines.splice(0, this.lines.length - 1000);
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
  }

  async ready(): Promise<void> {
    for (let i = 0; i < 1200 && !this.value('token: '); i++) {
      if (this.child.exitCode !== null) break;
      await sleep(100);
    }
    if (!this.value('token: ')) throw new Error(`cloud did not start:\n${this.lines.slice(-20).join('\n')}`);
  }

  private value(prefix: string): string | undefined {
    return this.lines.find((l) => l.startsWith(prefix))?.slice(prefix.length);
  }

  get httpUrl(): string {
    return this.value('console: ')!.split('#')[0].replace('localhost', '127.0.0.1').replace(/\/$/, '');
  }

  get brokerUrl(): string {
    return this.value('broker: ')!;
  }

  /** The fleet CA the embedded broker's certificate chains to (none with plain MQTT). */
  async caPem(): Promise<string | undefined> {
    return this.value('ca: ') ? readFile(join(this.dataDir, 'tls', 'ca.pem'), 'utf8') : undefined;
  }

  /** Log lines that are warnings or errors (the cloud logs at warn), for the report. */
  get problems(): string[] {
    return this.lines.filter((l) => l.startsWith('{'));
  }

  async api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const token = this.value('token: ');
    const raw = Buffer.isBuffer(body);
    const response = await fetch(`${this.httpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined
          ? {}
          : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }),
      },
      body: body === undefined ? undefined : raw ? (body as Buffer) : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  /** Resident memory now and at its peak (VmHWM), bytes. */
  async memory(): Promise<{ rss: number; peak: number }> {
    const status = await readFile(`/proc/${this.child.pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  }

  /** SIGTERM, then SIGKILL after `graceMs` (reported: a cloud that does not stop is a finding). */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => {
      timer = setTimeout(() => r('late'), graceMs);
    });
    const outcome = await Promise.race([exited, late]);
    clearTimeout(timer);
    if (outcome !== 'late') return;
    this.child.kill('SIGKILL');
    await exited;
    throw new Error(`the cloud did not stop within ${graceMs / 1000} s of SIGTERM (killed)`);
  }
}
