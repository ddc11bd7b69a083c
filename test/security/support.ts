import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetmlProcess, freePort, waitFor } from '../faults/procs.js';

export { FleetmlProcess, freePort, waitFor };

/** Resident memory of a process in MB: now (VmRSS) and its peak so far (VmHWM). */
export async function memoryMb(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

export interface SpawnedCloud {
  proc: FleetmlProcess;
  dir: string;
  dataDir: string;
  httpUrl: string;
  mqttPort: number;
  token: string;
  stop(): Promise<void>;
}

/** `fleetml cloud start` as a real process on loopback ports, with `extra` flags. */
export async function spawnCloud(extra: string[] = [], prefix = 'fleetml-sec-'): Promise<SpawnedCloud> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const dataDir = join(dir, 'cloud');
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const proc = new FleetmlProcess([
    'cloud',
    'start',
    '--data-dir',
    dataDir,
    '--http-port',
    String(httpPort),
    '--mqtt-port',
    String(mqttPort),
    ...extra,
  ]);
  const line = await proc.line(/^token: /, 90_000);
  return {
    proc,
    dir,
    dataDir,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    mqttPort,
    token: line.slice('token: '.length).trim(),
    stop: async () => {
      await proc.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A loopback TCP proxy that keeps every byte it forwards in both directions: the sniffer. */
export class RecordingProxy {
  readonly chunks: Buffer[] = [];
  private readonly server = net.createServer((client) => this.accept(client));
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly targetPort: number) {}

  static async start(targetPort: number): Promise<RecordingProxy> {
    const proxy = new RecordingProxy(targetPort);
    await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', () => r()));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Everything seen on the wire so far. */
  captured(): Buffer {
    return Buffer.concat(this.chunks);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d: Buffer) => {
      this.chunks.push(Buffer.from(d));
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      this.chunks.push(Buffer.from(d));
      client.write(d);
    });
  }
}
