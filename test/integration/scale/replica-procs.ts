import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetmlProcess, freePort } from '../../faults/procs.js';

/** `fleetml cloud start` replicas on one data directory, PostgreSQL and an external broker. */
export class ReplicaSet {
  readonly procs: FleetmlProcess[] = [];
  constructor(readonly o: { dataDir: string; mqttUrl: string; database: string; extraArgs?: string[] }) {}

  async start(extraArgs: string[] = []): Promise<FleetmlProcess> {
    const proc = new FleetmlProcess([
      ...['cloud', 'start', '--data-dir', this.o.dataDir, '--http-port', String(await freePort())],
      ...['--mqtt-url', this.o.mqttUrl, '--database', this.o.database],
      ...(this.o.extraArgs ?? []),
      ...extraArgs,
    ]);
    this.procs.push(proc);
    await proc.line(/^token: /, 120_000);
    return proc;
  }

  static httpUrl(p: FleetmlProcess): string {
    return p.lines
      .find((l) => l.startsWith('console: '))!
      .slice(9)
      .split('#')[0]
      .replace('localhost', '127.0.0.1');
  }

  async adminToken(): Promise<string> {
    return (await readFile(join(this.o.dataDir, 'admin-token'), 'utf8')).trim();
  }

  /** A JSON API call on one replica. */
  async api<T = any>(
    p: FleetmlProcess,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const raw = body instanceof Uint8Array;
    const response = await fetch(`${ReplicaSet.httpUrl(p)}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await this.adminToken()}`,
        ...(body === undefined
          ? {}
          : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }),
      },
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  async killAll(): Promise<void> {
    for (const p of this.procs) await p.kill('SIGKILL');
  }
}

/** A server-sent-events client on one replica's /api/stream, keeping every event it got. */
export class SseClient {
  readonly events: Array<{ event: string; data: any }> = [];
  private readonly abort = new AbortController();

  private constructor() {}

  static async open(url: string, token: string): Promise<SseClient> {
    const client = new SseClient();
    const response = await fetch(`${url}/api/stream?token=${encodeURIComponent(token)}`, {
      signal: client.abort.signal,
    });
    if (response.status !== 200 || !response.body) throw new Error(`/api/stream answered ${response.status}`);
    void client.read(response.body);
    return client;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of body) {
        buffered += decoder.decode(chunk, { stream: true });
        const blocks = buffered.split('\n\n');
        buffered = blocks.pop() ?? '';
        for (const block of blocks) {
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) this.events.push({ event, data: JSON.parse(data) });
        }
      }
    } catch {
      // closed
    }
  }

  close(): void {
    this.abort.abort();
  }
}
