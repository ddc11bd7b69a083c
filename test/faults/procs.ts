import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ExternalBackend, onPgMosquitto } from '../integration/support/backend-mode.js';

/** Helpers shared by the fault scenarios: real `fleetml` processes, waits, file checks. */

export const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/fleetml.mjs');

/** Polls `probe` until it returns something truthy; event-driven enough at 50 ms, with a deadline. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  ms = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** A `node bin/fleetml.mjs ...` child with its JSON log lines (stdout) and plain lines kept. */
export class FleetmlProcess {
  readonly lines: string[] = [];
  readonly logs: Array<Record<string, unknown>> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly args: string[],
    env: NodeJS.ProcessEnv = {},
    readonly child: ChildProcess = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  ) {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) {
        if (!line) continue;
        this.lines.push(line);
        if (line.startsWith('{')) {
          try {
            this.logs.push(JSON.parse(line));
          } catch {}
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal` and waits for the process to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    await this.exited;
  }

  /** The first line matching `pattern`; on a timeout the error shows the process's last lines. */
  line(pattern: RegExp, ms = 30_000): Promise<string> {
    return this.waitLine(pattern, ms).catch((error: Error) => {
      if (!error.message.startsWith('timed out')) throw error;
      throw new Error(`${error.message}; last lines:\n${this.lines.slice(-20).join('\n')}`);
    });
  }

  private waitLine(pattern: RegExp, ms: number): Promise<string> {
    return waitFor(
      `a line matching ${pattern} from fleetml ${this.args.slice(0, 2).join(' ')}`,
      () => {
        if (!this.running && !this.lines.some((l) => pattern.test(l))) {
          throw new Error(`fleetml ${this.args.join(' ')} exited:\n${this.lines.slice(-20).join('\n')}`);
        }
        return this.lines.find((l) => pattern.test(l));
      },
      ms,
    );
  }
}

/** How long `fleetml cloud start` may take to print its token (CloudProcess.start). */
export const CLOUD_START_MS = 180_000;

export interface CloudProcessOptions {
  dataDir: string;
  httpPort: number;
  mqttPort: number;
}

/**
 * `fleetml cloud start` on fixed loopback ports, so a restarted cloud comes back at the same
 * URLs. On FLEETML_TEST_BACKEND=pg-mosquitto it runs with --database and --mqtt-url on a
 * PostgreSQL database and a Mosquitto of its own, kept across restarts (dispose() removes them).
 */
export class CloudProcess {
  proc: FleetmlProcess | null = null;
  token = '';
  /** The PostgreSQL database and Mosquitto on pg-mosquitto; null on the embedded backend. */
  backend: ExternalBackend | null = null;
  constructor(readonly o: CloudProcessOptions) {}

  get httpUrl(): string {
    return `http://127.0.0.1:${this.o.httpPort}`;
  }

  get mqttUrl(): string {
    return this.backend?.broker.url ?? `mqtt://127.0.0.1:${this.o.mqttPort}`;
  }

  async start(): Promise<void> {
    if (onPgMosquitto) this.backend ??= await ExternalBackend.start();
    const external = this.backend?.cliArgs();
    const common = ['cloud', 'start', '--data-dir', this.o.dataDir, '--http-port', String(this.o.httpPort)];
    this.proc = new FleetmlProcess(
      external
        ? [...common, ...external.args]
        : // Loopback only: plain MQTT, so the agents under test connect without a CA.
          [...common, '--mqtt-port', String(this.o.mqttPort), '--insecure-plain-mqtt'],
      external?.env,
    );
    // Generous: a cold `cloud start` (tsx loading the whole cloud) took 30 s at load 27 on 2
    // cores, and more than 60 s while other tests shared the machine.
    const line = await this.proc.line(/^token: /, CLOUD_START_MS);
    this.token = line.slice('token: '.length).trim();
  }

  /** Removes the external backend (after the last stop). */
  async dispose(): Promise<void> {
    await this.backend?.close();
    this.backend = null;
  }

  /** Telemetry sequence numbers stored for a device (SQLite, or PostgreSQL on pg-mosquitto). */
  async telemetrySeqs(deviceId: string): Promise<Array<{ seq: number }>> {
    if (!this.backend)
      return this.query<{ seq: number }>('SELECT seq FROM telemetry WHERE device_id = ?', deviceId);
    const rows = await this.backend.query<{ seq: string }>('SELECT seq FROM telemetry WHERE device_id = $1', [
      deviceId,
    ]);
    return rows.map((r) => ({ seq: Number(r.seq) }));
  }

  /** Stops the cloud with `signal`; one that is still running 20 s later is a failure. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc?.running) return;
    proc.child.kill(signal);
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000).unref());
    if ((await Promise.race([proc.exited, timer])) === 'timeout') {
      await proc.kill('SIGKILL');
      throw new Error(`the cloud did not exit on ${signal}:\n${proc.lines.slice(-20).join('\n')}`);
    }
  }

  async api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const binary = Buffer.isBuffer(body);
    const response = await fetch(`${this.httpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined
          ? {}
          : { 'content-type': binary ? 'application/octet-stream' : 'application/json' }),
      },
      body: body === undefined ? undefined : binary ? new Uint8Array(body as Buffer) : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as T;
  }

  /** Read-only view of the cloud's SQLite database (WAL: safe beside the running cloud). */
  query<T>(sql: string, ...params: unknown[]): T[] {
    const db = new Database(join(this.o.dataDir, 'fleetml.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }
}

export function sha256File(path: string): Promise<string> {
  return readFile(path).then((b) => createHash('sha256').update(b).digest('hex'));
}

export interface SlotCheck {
  /** sha256 the agent's state.json names as active (null: no active model). */
  stateSha: string | null;
  /** sha256 of the bytes in the active slot. */
  fileSha: string | null;
}

/** What an agent's data dir says is active, and what the active slot's bytes hash to. */
export async function activeSlot(dataDir: string): Promise<SlotCheck> {
  const text = await readFile(join(dataDir, 'state.json'), 'utf8').catch(() => null);
  if (!text) return { stateSha: null, fileSha: null };
  const state = JSON.parse(text) as {
    activeSlot: 'a' | 'b' | null;
    slots: Record<string, { sha256: string } | null>;
  };
  if (!state.activeSlot) return { stateSha: null, fileSha: null };
  const stateSha = state.slots[state.activeSlot]?.sha256 ?? null;
  const fileSha = await sha256File(join(dataDir, 'slots', state.activeSlot, 'model.onnx')).catch(() => null);
  return { stateSha, fileSha };
}

/** Telemetry sequence numbers an agent has produced so far: the outbox's AUTOINCREMENT high mark. */
export function producedSeq(outboxPath: string): number {
  const db = new Database(outboxPath, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").get() as
      | { seq: number }
      | undefined;
    return row?.seq ?? 0;
  } finally {
    db.close();
  }
}

/** Counts of a device's stored telemetry: rows, distinct seqs, lowest and highest seq. */
export function telemetryCounts(rows: Array<{ seq: number }>): {
  rows: number;
  distinct: number;
  min: number;
  max: number;
  missing: number[];
} {
  const seqs = rows.map((r) => r.seq).sort((a, b) => a - b);
  const set = new Set(seqs);
  const min = seqs[0] ?? 0;
  const max = seqs.at(-1) ?? 0;
  const missing: number[] = [];
  for (let s = 1; s <= max; s++) if (!set.has(s)) missing.push(s);
  return { rows: seqs.length, distinct: set.size, min, max, missing };
}
