/**
 * `fleetml distill` end to end (issue 16, item 7): the real CLI in a child process, 784-800-800-10
 * student at batch 128 with the CLI's defaults, distilled from a 2×1200 MLP teacher on the 8,000
 * MNIST training digits (.npy with labels). Baseline in the same run: the synthetic training
 * micro-benchmark (same student, same session, one fixed chunk). CLI and baseline alternate in
 * blocks so that both see the same load.
 *
 *   npx tsx scripts/bench/distill-cli.ts [--rounds 3] [--epochs 5] [--write]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { mnistSplit } from '../../cloud/compression/data/mnist.js';
import { writeNpy } from '../../cloud/compression/data/npy.js';
import { buildTemplate } from '../../cloud/compression/distill/students/templates.js';
import { saveModel } from '../../cloud/compression/onnx/io.js';
import { throughput } from './distill-speed.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const rounds = option('--rounds', 3);
const epochs = option('--epochs', 5);
const log = (s: string) => process.stderr.write(`${s}\n`);
const dir = '.fleetml/bench/distill-cli';
mkdirSync(dir, { recursive: true });

const teacher = buildTemplate(
  { kind: 'mlp', hidden: [1200, 1200] },
  { sampleShape: [1, 28, 28], classes: 10, seed: 3 },
);
await saveModel(teacher, join(dir, 'teacher.onnx'));
const { train } = mnistSplit();
await writeNpy(join(dir, 'x.npy'), train.x, [train.count, 784]);
await writeNpy(join(dir, 'y.npy'), train.y, [train.count]);

interface CliRun {
  reported: number;
  wallSeconds: number;
  trainedSamples: number;
}

function runCli(): CliRun {
  const started = performance.now();
  const argv = [
    'bin/fleetml.mjs',
    'distill',
    '--teacher',
    join(dir, 'teacher.onnx'),
    '--data',
    join(dir, 'x.npy'),
  ];
  argv.push('--labels', join(dir, 'y.npy'), '--student', 'mlp:800,800', '-o', join(dir, 'student.onnx'));
  argv.push('--epochs', String(epochs), '--json');
  const result = spawnSync(process.execPath, argv, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`fleetml distill failed: ${result.stderr}`);
  const summary = JSON.parse(result.stdout.trim().split('\n').pop()!) as { samplesPerSecond: number };
  const stepsPerEpoch = Math.floor(train.count / 128);
  return {
    reported: summary.samplesPerSecond,
    wallSeconds: (performance.now() - started) / 1000,
    trainedSamples: stepsPerEpoch * 128 * epochs,
  };
}

const cli: CliRun[] = [];
const micro: number[] = [];
for (let r = 0; r < rounds; r++) {
  const c = runCli();
  cli.push(c);
  const m = await throughput('sgd', 16, false, 3);
  micro.push(m.medianSamplesPerSecond);
  log(
    `round ${r + 1}: CLI ${c.reported} samples/s (wall ${c.wallSeconds.toFixed(1)} s), micro ${m.medianSamplesPerSecond.toFixed(0)}`,
  );
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const rows = cli.map((c, i) => [
  i + 1,
  c.reported,
  (c.trainedSamples / c.wallSeconds).toFixed(0),
  c.wallSeconds.toFixed(1),
  micro[i].toFixed(0),
  `×${(c.reported / micro[i]).toFixed(2)}`,
]);
const stamp = new Date().toISOString().slice(0, 16).replace('T', ' ');
const body = [
  `Command: \`npx tsx scripts/bench/distill-cli.ts ${args.join(' ')}\` · ${stamp} UTC · ${machineLine()} · load average at the end ${loadavg()[0].toFixed(1)} (the cores are shared with other jobs)`,
  '',
  `\`fleetml distill --teacher teacher.onnx --data x.npy --labels y.npy --student mlp:800,800 -o student.onnx --epochs ${epochs} --json\`:`,
  '2×1200 MLP teacher, 8,000 MNIST digits, 784-800-800-10 student, batch 128 and every other setting at its default. The',
  "CLI's samples/s is over its training runs (batch selection, teacher targets and the session); end to end divides the",
  'trained samples by the whole process (start-up, loading, teacher pass, export). Baseline in the same rounds: the',
  'synthetic micro-benchmark (same student and session, SGD, 16 steps per run, sleeping threads, one fixed chunk).',
  'Target: ≥ 25,000 samples/s.',
  '',
  markdownTable(
    [
      'round',
      'CLI samples/s',
      'end-to-end samples/s',
      'CLI wall s',
      'micro-benchmark samples/s',
      'CLI / micro',
    ],
    rows,
  ),
  '',
  `Median: CLI ${median(cli.map((c) => c.reported))} samples/s, micro-benchmark ${median(micro).toFixed(0)}, ratio ×${(median(cli.map((c) => c.reported)) / median(micro)).toFixed(2)}.`,
].join('\n');
process.stdout.write(`${body}\n`);
if (args.includes('--write')) await writeBenchmarkSection('Distillation CLI end to end (issue 16)', body);
