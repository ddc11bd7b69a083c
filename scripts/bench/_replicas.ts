import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join, resolve } from 'node:path';

// Real processes for the scale benchmarks: a Mosquitto and `fleetml cloud start` replicas.

const ROOT = resolve(import.meta.dirname, '../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Mosquitto on a loopback port, anonymous, sized for many connections and queued messages.
 * stop() then start() restarts it on the same port (no persistence: sessions and retained
 * messages are gone, as after a crash).
 */
export async function startBenchMosquitto(
  dir: string,
): Promise<{ url: string; stop: () => Promise<void>; start: () => Promise<void> }> {
  const port = await freePort();
  await writeFile(
    join(dir, 'mosquitto.conf'),
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'max_queued_messages 100000',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !(await listening(port)); i++) await sleep(50);
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    start,
    stop: async () => {
      const running = child;
      child = null;
      if (!running || running.exitCode !== null) return;
      const exited = new Promise((r) => running.once('exit', r));
      running.kill('SIGTERM');
      await exited;
    },
  };
}

/** One `fleetml cloud start` replica; keeps its plain lines and its leading/following log lines. */
export class BenchReplica {
  readonly lines: string[] = [];
  readonly child: ChildProcess;

  constructor(
    private readonly dataDir: string,
    mqttUrl: string,
    database: string,
  ) {
    this.child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin/fleetml.mjs'),
        ...['cloud', 'start', '--data-dir', dataDir, '--http-port', '0'],
        ...['--mqtt-url', mqttUrl, '--database', database, '--job-workers', '0'],
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLEETML_LOG_LEVEL: 'info' } },
    );
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      this.lines.push(...parts.filter((l) => !l.startsWith('{') || /"msg":"(leading|following)"/.test(l)));
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
  }

  get leading(): boolean {
    const last = this.lines.filter((l) => /"msg":"(leading|following)"/.test(l)).pop();
    return last?.includes('"leader":true') ?? false;
  }

  async ready(): Promise<void> {
    for (let i = 0; i < 1200 && !this.lines.some((l) => l.startsWith('token: ')); i++) {
      if (this.child.exitCode !== null) break;
      await sleep(100);
    }
    if (!this.lines.some((l) => l.startsWith('token: ')))
      throw new Error(`replica did not start:\n${this.lines.slice(-20).join('\n')}`);
  }

  get httpUrl(): string {
    // The console line is the page's address (with a trailing slash and maybe a #token).
    const page = new URL(
      this.lines
        .find((l) => l.startsWith('console: '))!
        .slice(9)
        .trim(),
    );
    return page.origin.replace('localhost', '127.0.0.1');
  }

  async enrollToken(uses: number): Promise<string> {
    const adminToken = (await readFile(join(this.dataDir, 'admin-token'), 'utf8')).trim();
    const response = await fetch(`${this.httpUrl}/api/enroll-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ uses }),
    });
    const body = (await response.json()) as { token?: string };
    if (response.status !== 201 || !body.token)
      throw new Error(`enroll token refused: ${response.status} ${JSON.stringify(body)}`);
    return body.token;
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    await new Promise((r) => this.child.once('exit', r));
  }
}
