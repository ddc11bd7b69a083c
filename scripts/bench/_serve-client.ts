/**
 * The client side of scripts/bench/serve.ts, in its own process (a forked child) so that the
 * server's event loop is not shared. Like wrk, it writes a prebuilt HTTP/1.1 request on raw
 * keep-alive sockets and reads only the status and Content-Length of each reply: the figures
 * then measure the server and loopback, not Node's HTTP client (which costs more per request
 * than the service itself on this model). N concurrent loops, one connection each.
 * Messages from the parent: {op:'latency', n, body, headers} -> per-request ms;
 * {op:'load', ms, concurrency, body, headers} -> {ok, failed, errors, seconds, p50, p99};
 * {op:'start'}/{op:'stop'}.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

const url = new URL(process.argv[2]);

interface Job {
  op: 'latency' | 'load' | 'start' | 'stop' | 'exit';
  n?: number;
  ms?: number;
  concurrency?: number;
  body?: string;
  binary?: boolean;
  headers?: Record<string, string>;
}

let request: Buffer = Buffer.alloc(0);

function buildRequest(body: Buffer, headers: Record<string, string>): Buffer {
  const lines = [
    `POST ${url.pathname} HTTP/1.1`,
    `host: ${url.host}`,
    `content-length: ${body.length}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ];
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]);
}

/** One keep-alive connection with at most one request outstanding (no pipelining). */
class Connection {
  private socket: Socket | null = null;
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: ((status: number) => void) | null = null;

  send(bytes: Buffer): Promise<number> {
    if (!this.socket) this.open();
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.socket!.write(bytes);
    });
  }

  close(): void {
    this.socket?.destroy();
  }

  private open(): void {
    const socket = connect({ host: url.hostname, port: Number(url.port), noDelay: true });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const gone = () => {
      if (this.socket === socket) this.socket = null;
      this.buffer = Buffer.alloc(0);
      this.remaining = -1;
      this.finish(-1);
    };
    socket.on('error', gone);
    socket.on('close', gone);
    this.socket = socket;
  }

  /** Body bytes still to come for the reply being read; -1 while its head is incomplete. */
  private remaining = -1;
  private status = 0;

  private onData(chunk: Buffer): void {
    if (this.remaining >= 0) {
      // Body bytes are only counted, never copied (replies can be megabytes of tensors).
      this.remaining -= chunk.length;
    } else {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buffer.toString('latin1', 0, end);
      this.status = Number(head.slice(9, 12));
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      this.remaining = length - (this.buffer.length - end - 4);
      this.buffer = Buffer.alloc(0);
    }
    if (this.remaining <= 0) {
      this.remaining = -1;
      this.finish(this.status);
    }
  }

  private finish(status: number): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.(status);
  }
}

let running = false;
let stats = { ok: 0, failed: 0, errors: [] as string[] };
let times: number[] = [];
let loops: Promise<void>[] = [];

async function loop(): Promise<void> {
  const connection = new Connection();
  while (running) {
    const t0 = performance.now();
    const status = await connection.send(request);
    if (status === 200) {
      stats.ok++;
      times.push(performance.now() - t0);
    } else {
      stats.failed++;
      if (stats.errors.length < 5) stats.errors.push(String(status));
    }
  }
  connection.close();
}

function percentile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.floor(q * (sorted.length - 1))] : Number.NaN;
}

process.on('message', async (job: Job) => {
  if (job.body !== undefined) {
    const body = job.binary ? Buffer.from(job.body, 'base64') : Buffer.from(job.body);
    request = buildRequest(body, job.headers ?? {});
  }
  if (job.op === 'latency') {
    const connection = new Connection();
    const out: number[] = [];
    for (let i = 0; i < (job.n ?? 1); i++) {
      const t0 = performance.now();
      const status = await connection.send(request);
      if (status !== 200) throw new Error(`status ${status}`);
      out.push(performance.now() - t0);
    }
    connection.close();
    process.send!({ times: out });
  } else if (job.op === 'load' || job.op === 'start') {
    stats = { ok: 0, failed: 0, errors: [] };
    times = [];
    running = true;
    const t0 = performance.now();
    loops = Array.from({ length: job.concurrency ?? 8 }, loop);
    if (job.op === 'start') {
      process.send!({ started: true });
      return;
    }
    await new Promise((r) => setTimeout(r, job.ms));
    running = false;
    await Promise.all(loops);
    const sorted = times.sort((a, b) => a - b);
    process.send!({
      ...stats,
      seconds: (performance.now() - t0) / 1000,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
    });
  } else if (job.op === 'stop') {
    running = false;
    await Promise.all(loops);
    process.send!(stats);
  } else if (job.op === 'exit') {
    process.exit(0);
  }
});
