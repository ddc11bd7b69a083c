import { SingleBar } from 'cli-progress';
import { FleetError } from '../../shared/errors/index.js';
import { loadModel, saveModel } from '../compression/onnx/io.js';
import type { ModelProto } from '../compression/onnx/types.js';
import { loadSamples, type SampleSet } from '../compression/quantize/calibrate/data.js';
import type { CalibrationMethod } from '../compression/quantize/calibrate/methods.js';
import { matmulOnlyExclusions } from '../compression/quantize/choose.js';
import { quantizeWithFallback } from '../compression/quantize/fallback.js';
import {
  buildQdq,
  type CalibratedModel,
  calibrateModel,
  type QdqOptions,
} from '../compression/quantize/static.js';
import { tuneForLatency } from '../compression/quantize/tune.js';
import { numberOption } from './number-option.js';
import type { QuantizeFlags } from './quantize.js';
import { type BuiltInt8, deliverInt8 } from './quantize-deliver.js';
import { floatOpsPhrase, measureOutcome, speedLine } from './quantize-report.js';
import { type QuantizeTarget, resolveTarget } from './quantize-target.js';

const num = (value: string | undefined, flag: string) => numberOption(value, flag);
const excluded = (flags: QuantizeFlags) =>
  flags.exclude ? flags.exclude.split(',').map((s) => s.trim()) : [];

/** Writes the model, measures it against the FP32 input and prints one summary. */
async function finish(
  flags: QuantizeFlags,
  modelPath: string,
  model: ModelProto,
  target: QuantizeTarget,
  label: string,
  fields: Record<string, unknown>,
  sample?: SampleSet,
): Promise<void> {
  const started = performance.now();
  const size = await saveModel(model, flags.output);
  const outcome = await measureOutcome(modelPath, flags.output, target.batch, sample);
  const summary = {
    input: modelPath,
    output: flags.output,
    sizeBytes: size,
    target: target.name,
    reduceRange: target.reduceRange,
    ...fields,
    ...outcome,
    measureSeconds: (performance.now() - started) / 1000,
  };
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const floatOps = floatOpsPhrase(fields.floatOps);
  process.stdout.write(
    `wrote ${flags.output} (${label} for ${target.name}, ${size} bytes, ${fields.quantizedNodes} nodes converted${floatOps}) in ${Number(fields.seconds).toFixed(1)} s\n`,
  );
  process.stdout.write(speedLine(outcome, label));
}

/** Formats that need no calibration: one function each, chosen by flag. */
async function runWeightFormat(modelPath: string, flags: QuantizeFlags, format: string): Promise<void> {
  const started = performance.now();
  const target = resolveTarget(flags);
  const model = await loadModel(modelPath);
  const exclude = excluded(flags);
  let result: { model: ModelProto; quantizedNodes?: number; fp16Nodes?: number; floatOps?: unknown };
  if (format === 'dynamic') {
    const { quantizeDynamic } = await import('../compression/quantize/dynamic.js');
    result = await quantizeDynamic(model, {
      perChannel: target.perChannel,
      exclude,
      reduceRange: target.reduceRange,
    });
  } else if (format === 'int4') {
    const { quantizeInt4 } = await import('../compression/quantize/int4.js');
    result = await quantizeInt4(model, { blockSize: num(flags.blockSize, '--block-size') ?? 32, exclude });
  } else {
    const { convertToFp16 } = await import('../compression/quantize/fp16.js');
    result = await convertToFp16(model, { exclude });
  }
  const seconds = (performance.now() - started) / 1000;
  if (format === 'dynamic') {
    const built = {
      form: 'dynamic' as const,
      model: result.model,
      quantizedNodes: result.quantizedNodes ?? 0,
    };
    return deliverInt8(flags, modelPath, target, [built], { format, seconds });
  }
  const label = { int4: 'INT4', fp16: 'FP16' }[format] ?? format;
  await finish(flags, modelPath, result.model, target, label, {
    format,
    quantizedNodes: result.quantizedNodes ?? result.fp16Nodes,
    floatOps: result.floatOps,
    seconds,
  });
}

async function calibrate(
  model: ModelProto,
  flags: QuantizeFlags,
  calibration: SampleSet,
  target: QuantizeTarget,
): Promise<CalibratedModel> {
  const bar = new SingleBar({
    stream: process.stderr,
    format: '{task} [{bar}] {value}/{total}',
    hideCursor: true,
  });
  const samples = num(flags.samples, '--samples') ?? 64;
  if (!Number.isInteger(samples) || samples < 1)
    throw new FleetError('INPUT_INVALID', `--samples must be a whole number >= 1, got '${flags.samples}'`);
  bar.start(Math.min(calibration.count, samples), 0, { task: 'calibrating' });
  try {
    return await calibrateModel(model, calibration, {
      method: flags.method as CalibrationMethod,
      samples,
      x86Kernels: target.x86,
      onProgress: (done) => bar.update(done),
    });
  } finally {
    bar.stop();
  }
}

type StaticResult = ReturnType<typeof buildQdq> & {
  keptFloat?: string[];
  metrics?: Record<string, number>;
  floatByMeasurement?: string[];
  notMeasured?: string[];
};

/** Static INT8 under an accuracy budget: fallback or sensitivity search. */
async function withBudget(
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions>,
  flags: QuantizeFlags,
): Promise<StaticResult | undefined> {
  const maxDrop = num(flags.maxAccuracyDrop, '--max-accuracy-drop');
  const minSnr = num(flags.minSnr, '--min-snr');
  const minCosine = num(flags.minCosine, '--min-cosine');
  if (maxDrop === undefined && minSnr === undefined && minCosine === undefined) return undefined;
  if (!flags.data || (maxDrop !== undefined && !flags.labels)) {
    throw new FleetError(
      'INPUT_INVALID',
      '--max-accuracy-drop needs --data and --labels; --min-snr and --min-cosine need --data',
    );
  }
  const data = await loadSamples(flags.data, flags.labels);
  const budget = { maxAccuracyDrop: maxDrop, minSnrDb: minSnr, minCosine };
  if (flags.search === 'fallback')
    return quantizeWithFallback(calibrated, qdq, data, budget, {
      onStep: (step, m, kept) =>
        process.stderr.write(`fallback step ${step}: ${JSON.stringify(m)} float: ${kept.length}\n`),
    });
  const { quantizeMixed } = await import('../compression/quantize/mixed.js');
  return quantizeMixed(calibrated, qdq, data, budget, {
    onSensitivity: (done, total) => {
      if (done % 20 === 0 || done === total) process.stderr.write(`sensitivity ${done}/${total} tensors\n`);
    },
    onStep: (k, m) => process.stderr.write(`float tensors ${k}: ${JSON.stringify(m)}\n`),
    onRefine: (round, promoted) =>
      process.stderr.write(`refining (${round}): ${promoted} first, searching again\n`),
  });
}

/** Per-op tuning measured here, only when this machine's kernels are the target's. */
async function tuned(
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions>,
  calibration: SampleSet,
  flags: QuantizeFlags,
  target: QuantizeTarget,
): Promise<StaticResult> {
  if (!flags.tune || !target.tuneHere) return buildQdq(calibrated, qdq);
  const result = await tuneForLatency(calibrated, qdq, calibration, {
    batch: target.batch,
    onCandidate: (op, ratio, kept, detail) =>
      process.stderr.write(
        `tune ${op}: float/int8 latency ${ratio.toFixed(3)} (faster in ${detail.wins} of ${detail.pairs} pairs)${kept ? ' (kept float)' : ''}\n`,
      ),
  });
  if (result.notMeasured?.length)
    process.stderr.write(`tuning budget spent; not measured (left int8): ${result.notMeasured.join(', ')}\n`);
  return result;
}

async function runStatic(modelPath: string, flags: QuantizeFlags): Promise<void> {
  if (flags.weights !== 'int8')
    throw new FleetError('INPUT_INVALID', `--weights must be int8 or int4, got '${flags.weights}'`);
  if (flags.format !== 'qdq')
    throw new FleetError('INPUT_INVALID', `unknown format '${flags.format}' (known: qdq)`);
  if (flags.search !== 'fallback' && flags.search !== 'sensitivity')
    throw new FleetError('INPUT_INVALID', `--search must be fallback or sensitivity, got '${flags.search}'`);
  const target = resolveTarget(flags);
  if (!flags.calibration)
    throw new FleetError('INPUT_INVALID', 'static quantization needs --calibration <x.npy>');
  const started = performance.now();
  const calibration = await loadSamples(flags.calibration);
  const calibrated = await calibrate(await loadModel(modelPath), flags, calibration, target);
  const qdq: Partial<QdqOptions> = {
    activationType: target.activationType,
    symmetricActivations: target.symmetricActivations,
    perChannel: target.perChannel,
    reduceRange: target.reduceRange,
    exclude: excluded(flags),
  };
  const budgeted = await withBudget(calibrated, qdq, flags);
  const result = budgeted ?? (await tuned(calibrated, qdq, calibration, flags, target));
  const built: BuiltInt8[] = [
    { form: 'static', model: result.model, quantizedNodes: result.quantizedNodes, floatOps: result.floatOps },
  ];
  // Other forms compete only where this machine's measurement decides, and not under an
  // accuracy budget (only the static build was checked against it).
  if (target.tuneHere && !budgeted) built.push(...(await otherForms(modelPath, calibrated, qdq, target)));
  await deliverInt8(
    flags,
    modelPath,
    target,
    built,
    {
      method: flags.method,
      activations: target.activationType,
      symmetricActivations: target.symmetricActivations,
      perChannel: target.perChannel,
      tuned: !budgeted && Boolean(flags.tune) && target.tuneHere,
      keptFloat: result.keptFloat ?? [],
      floatByMeasurement: result.floatByMeasurement ?? [],
      notMeasured: result.notMeasured ?? [],
      metrics: result.metrics,
      prepare: calibrated.prepare,
      rewrites: calibrated.rewrites,
      seconds: (performance.now() - started) / 1000,
    },
    calibration,
  );
}

/** Dynamic INT8 and static INT8 on the weight MatMuls only, when weight MatMuls hold most of the weights. */
async function otherForms(
  modelPath: string,
  calibrated: CalibratedModel,
  qdq: Partial<QdqOptions>,
  target: QuantizeTarget,
): Promise<BuiltInt8[]> {
  const exclusions = matmulOnlyExclusions(calibrated.model);
  if (!exclusions) return [];
  const matmuls = buildQdq(calibrated, { ...qdq, exclude: [...(qdq.exclude ?? []), ...exclusions] });
  const forms: BuiltInt8[] = [
    {
      form: 'matmul-only',
      model: matmuls.model,
      quantizedNodes: matmuls.quantizedNodes,
      floatOps: matmuls.floatOps,
    },
  ];
  const { quantizeDynamic } = await import('../compression/quantize/dynamic.js');
  try {
    const dynamic = await quantizeDynamic(await loadModel(modelPath), {
      perChannel: target.perChannel,
      exclude: qdq.exclude,
      reduceRange: target.reduceRange,
    });
    if (dynamic.quantizedNodes > 0)
      forms.push({ form: 'dynamic', model: dynamic.model, quantizedNodes: dynamic.quantizedNodes });
  } catch (error) {
    // The other forms still compete; say why this one does not.
    process.stderr.write(`dynamic INT8 not built: ${(error as Error).message.split('\n')[0]}\n`);
  }
  return forms;
}

export async function runQuantize(modelPath: string, flags: QuantizeFlags): Promise<void> {
  const formats = [
    flags.dynamic && 'dynamic',
    flags.fp16 && 'fp16',
    flags.weights === 'int4' && 'int4',
  ].filter((f): f is string => typeof f === 'string');
  if (formats.length > 1)
    throw new FleetError(
      'INPUT_INVALID',
      `choose one of --dynamic, --fp16, --weights int4 (got ${formats.join(', ')})`,
    );
  if (formats.length === 1) return runWeightFormat(modelPath, flags, formats[0]);
  return runStatic(modelPath, flags);
}
