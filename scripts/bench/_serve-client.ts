/**
 * The client side of scripts/bench/serve.ts, in its own process (a forked child) so that the
 * server's event loop is not shared: keep-alive HTTP over loopback, N concurrent loops.
 * Messages from the parent: {op:'latency', n, body, headers} -> per-request ms;
 * {op:'load', ms, concurrency, body, headers} -> {ok, failed, errors}; {op:'start'}/{op:'stop'}.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

const url = new URL(process.argv[2]);
const agent = new Agent({ keepAlive: true, maxSockets: 64, noDelay: true } as ConstructorParameters<
  typeof Agent
>[0]);

interface Job {
  op: 'latency' | 'load' | 'start' | 'stop' | 'exit';
  n?: number;
  ms?: number;
  concurrency?: number;
  body?: string;
  binary?: boolean;
  headers?: Record<string, string>;
}

let body: Buffer = Buffer.alloc(0);
let headers: Record<string, string> = {};

function once(): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent,
        headers: { ...headers, 'content-length': body.length },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(-1));
    req.end(body);
  });
}

let running = false;
let stats = { ok: 0, failed: 0, errors: [] as string[] };

async function loop(): Promise<void> {
  while (running) {
    const status = await once();
    if (status === 200) stats.ok++;
    else {
      stats.failed++;
      if (stats.errors.length < 5) stats.errors.push(String(status));
    }
  }
}

let loops: Promise<void>[] = [];

process.on('message', async (job: Job) => {
  if (job.body !== undefined) body = job.binary ? Buffer.from(job.body, 'base64') : Buffer.from(job.body);
  if (job.headers) headers = job.headers;
  if (job.op === 'latency') {
    const times: number[] = [];
    for (let i = 0; i < (job.n ?? 1); i++) {
      const t0 = performance.now();
      const status = await once();
      if (status !== 200) throw new Error(`status ${status}`);
      times.push(performance.now() - t0);
    }
    process.send!({ times });
  } else if (job.op === 'load') {
    stats = { ok: 0, failed: 0, errors: [] };
    running = true;
    const t0 = performance.now();
    loops = Array.from({ length: job.concurrency ?? 8 }, loop);
    await new Promise((r) => setTimeout(r, job.ms));
    running = false;
    await Promise.all(loops);
    process.send!({ ...stats, seconds: (performance.now() - t0) / 1000 });
  } else if (job.op === 'start') {
    stats = { ok: 0, failed: 0, errors: [] };
    running = true;
    loops = Array.from({ length: job.concurrency ?? 8 }, loop);
    process.send!({ started: true });
  } else if (job.op === 'stop') {
    running = false;
    await Promise.all(loops);
    process.send!(stats);
  } else if (job.op === 'exit') {
    process.exit(0);
  }
});
