/**
 * Does the agent's benchmark tell the truth? Its reported p50 against a bare onnxruntime loop
 * (performance.now() around session.run, nothing else) on the same session, same inputs,
 * interleaved in rounds so both see the same machine state. Target: within 5 %.
 * Usage: npx tsx scripts/bench/agent-bench-accuracy.ts [--rounds 5] [--runs 200] [--json]
 */
import { performance } from 'node:perf_hooks';
import { randomFeeds, runBenchmark } from '../../agent/bench/benchmark.js';
import { percentile } from '../../agent/bench/stats.js';
import { createSession } from '../../agent/runtime/ort.js';
import { attr, floatInput, makeModel, makeNode } from '../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../cloud/compression/onnx/proto.js';
import { floatTensor } from '../../cloud/compression/onnx/tensor.js';
import { createRng, gaussian } from '../../shared/random.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = arg('rounds', 6);
const RUNS = arg('runs', 100);

// MLP 784-2048-2048-10 at batch 8, one intra-op thread: a few milliseconds per run, steady
// enough on a shared 2-core machine that the comparison measures the harness, not the neighbours.
const rng = createRng(3);
const w = (n: number, s: number) => Float32Array.from({ length: n }, () => gaussian(rng) * s);
const dims = [784, 2048, 2048, 10];
const nodes = [];
const inits = [];
let prev = 'x';
for (let l = 0; l < 3; l++) {
  inits.push(floatTensor(`w${l}`, [dims[l + 1], dims[l]], w(dims[l] * dims[l + 1], 1 / Math.sqrt(dims[l]))));
  inits.push(floatTensor(`b${l}`, [dims[l + 1]], w(dims[l + 1], 0.01)));
  const out = l === 2 ? 'y' : `h${l}`;
  nodes.push(makeNode('Gemm', [prev, `w${l}`, `b${l}`], [out], [attr.int('transB', 1)]));
  if (l < 2) {
    nodes.push(makeNode('Relu', [out], [`r${l}`]));
    prev = `r${l}`;
  }
}
const model = encodeModel(
  makeModel(nodes, [floatInput('x', ['batch', 784])], [floatInput('y', ['batch', 10])], {
    initializers: inits,
  }),
);

const session = await createSession(model, { ep: 'cpu', intraOpThreads: 1 });
const feeds = randomFeeds(session, { dynamicDim: 8 });
for (let i = 0; i < 50; i++) await session.run(feeds);

async function bareP50(): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    samples.push(performance.now() - t0);
  }
  return percentile(Float64Array.from(samples).sort(), 50);
}

const bare: number[] = [];
const agent: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  bare.push(await bareP50());
  agent.push(
    (await runBenchmark(session, 'cpu', { runs: RUNS, warmupRuns: 5, budgetMs: 60_000 }, feeds)).p50Ms,
  );
}
const median = (v: number[]) => percentile(Float64Array.from(v).sort(), 50);
const ratio = median(agent) / median(bare);
const result = {
  model: 'MLP 784-2048-2048-10 fp32, batch 8, 1 thread',
  rounds: ROUNDS,
  runsPerRound: RUNS,
  bareP50Ms: Math.round(median(bare) * 1e4) / 1e4,
  agentP50Ms: Math.round(median(agent) * 1e4) / 1e4,
  ratio: Math.round(ratio * 1000) / 1000,
  pass: Math.abs(ratio - 1) <= 0.05,
};
if (args.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
else console.table(result);
await session.release();
