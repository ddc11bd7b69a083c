import { SingleBar } from 'cli-progress';
import { FleetError } from '../../shared/errors/index.js';
import { loadModel, saveModel } from '../compression/onnx/io.js';
import type { ModelProto } from '../compression/onnx/types.js';
import { loadSamples } from '../compression/quantize/calibrate/data.js';
import type { CalibrationMethod } from '../compression/quantize/calibrate/methods.js';
import { quantizeWithFallback } from '../compression/quantize/fallback.js';
import { buildQdq, calibrateModel } from '../compression/quantize/static.js';
import { hostProfile, resolveReduceRange } from '../compression/quantize/target.js';
import { tuneForLatency } from '../compression/quantize/tune.js';
import { numberOption } from './number-option.js';
import type { QuantizeFlags } from './quantize.js';

/** The CPU the model was built for (this machine) and whether it got 7-bit weights for it. */
const hostTarget = () => ({
  target: hostProfile()?.name ?? process.arch,
  reduceRange: resolveReduceRange('host'),
});

const num = (value: string | undefined, flag: string) => numberOption(value, flag);

/** Formats that need no calibration: one function each, chosen by flag. */
async function runWeightFormat(modelPath: string, flags: QuantizeFlags, format: string): Promise<void> {
  const started = performance.now();
  const model = await loadModel(modelPath);
  const exclude = flags.exclude ? flags.exclude.split(',').map((s) => s.trim()) : [];
  let result: { model: ModelProto; quantizedNodes?: number; fp16Nodes?: number; floatOps?: unknown };
  if (format === 'dynamic') {
    const { quantizeDynamic } = await import('../compression/quantize/dynamic.js');
    result = await quantizeDynamic(model, { perChannel: flags.perChannel, exclude });
  } else if (format === 'int4') {
    const { quantizeInt4 } = await import('../compression/quantize/int4.js');
    result = await quantizeInt4(model, { blockSize: num(flags.blockSize, '--block-size') ?? 32, exclude });
  } else {
    const { convertToFp16 } = await import('../compression/quantize/fp16.js');
    result = await convertToFp16(model, { exclude });
  }
  const size = await saveModel(result.model, flags.output);
  const summary = {
    input: modelPath,
    output: flags.output,
    format,
    sizeBytes: size,
    quantizedNodes: result.quantizedNodes ?? result.fp16Nodes,
    floatOps: result.floatOps,
    ...(format === 'dynamic' ? hostTarget() : {}),
    seconds: (performance.now() - started) / 1000,
  };
  if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else
    process.stdout.write(
      `wrote ${flags.output} (${format}, ${size} bytes, ${summary.quantizedNodes} nodes converted) in ${summary.seconds.toFixed(1)} s\n`,
    );
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
  if (flags.weights !== 'int8')
    throw new FleetError('INPUT_INVALID', `--weights must be int8 or int4, got '${flags.weights}'`);
  if (flags.format !== 'qdq')
    throw new FleetError('INPUT_INVALID', `unknown format '${flags.format}' (known: qdq)`);
  if (flags.activations !== 'uint8' && flags.activations !== 'int8') {
    throw new FleetError('INPUT_INVALID', `--activations must be uint8 or int8, got '${flags.activations}'`);
  }
  if (!flags.calibration)
    throw new FleetError('INPUT_INVALID', 'static quantization needs --calibration <x.npy>');
  const started = performance.now();
  const model = await loadModel(modelPath);
  const calibration = await loadSamples(flags.calibration);
  const bar = new SingleBar({
    stream: process.stderr,
    format: '{task} [{bar}] {value}/{total}',
    hideCursor: true,
  });
  bar.start(Math.min(calibration.count, Number(flags.samples)), 0, { task: 'calibrating' });
  const calibrated = await calibrateModel(model, calibration, {
    method: flags.method as CalibrationMethod,
    samples: Number(flags.samples),
    onProgress: (done) => bar.update(done),
  });
  bar.stop();
  const qdq = {
    activationType: flags.activations as 'uint8' | 'int8',
    perChannel: flags.perChannel,
    exclude: flags.exclude ? flags.exclude.split(',').map((s) => s.trim()) : [],
  };
  const maxDrop = num(flags.maxAccuracyDrop, '--max-accuracy-drop');
  const minSnr = num(flags.minSnr, '--min-snr');
  const minCosine = num(flags.minCosine, '--min-cosine');
  if (flags.search !== 'fallback' && flags.search !== 'sensitivity')
    throw new FleetError('INPUT_INVALID', `--search must be fallback or sensitivity, got '${flags.search}'`);
  let result: ReturnType<typeof buildQdq> & {
    keptFloat?: string[];
    metrics?: Record<string, number>;
    floatByMeasurement?: string[];
    notMeasured?: string[];
  };
  if (maxDrop !== undefined || minSnr !== undefined || minCosine !== undefined) {
    if (!flags.data || (maxDrop !== undefined && !flags.labels)) {
      throw new FleetError(
        'INPUT_INVALID',
        '--max-accuracy-drop needs --data and --labels; --min-snr and --min-cosine need --data',
      );
    }
    const data = await loadSamples(flags.data, flags.labels);
    const budget = { maxAccuracyDrop: maxDrop, minSnrDb: minSnr, minCosine };
    if (flags.search === 'sensitivity') {
      const { quantizeMixed } = await import('../compression/quantize/mixed.js');
      result = await quantizeMixed(calibrated, qdq, data, budget, {
        onSensitivity: (done, total) => {
          if (done % 20 === 0 || done === total)
            process.stderr.write(`sensitivity ${done}/${total} tensors\n`);
        },
        onStep: (k, m) => process.stderr.write(`float tensors ${k}: ${JSON.stringify(m)}\n`),
        onRefine: (round, promoted) =>
          process.stderr.write(`refining (${round}): ${promoted} first, searching again\n`),
      });
    } else {
      result = await quantizeWithFallback(calibrated, qdq, data, budget, {
        onStep: (step, m, kept) =>
          process.stderr.write(`fallback step ${step}: ${JSON.stringify(m)} float: ${kept.length}\n`),
      });
    }
  } else if (flags.tune) {
    result = await tuneForLatency(calibrated, qdq, calibration, {
      onCandidate: (op, ratio, kept) =>
        process.stderr.write(
          `tune ${op}: float/int8 latency ${ratio.toFixed(3)}${kept ? ' (kept float)' : ''}\n`,
        ),
    });
    if (result.notMeasured?.length)
      process.stderr.write(
        `tuning budget spent; not measured (left int8): ${result.notMeasured.join(', ')}\n`,
      );
  } else {
    result = buildQdq(calibrated, qdq);
  }
  const size = await saveModel(result.model, flags.output);
  const summary = {
    input: modelPath,
    output: flags.output,
    sizeBytes: size,
    method: flags.method,
    activations: flags.activations,
    perChannel: flags.perChannel,
    ...hostTarget(),
    quantizedNodes: result.quantizedNodes,
    floatOps: result.floatOps,
    keptFloat: result.keptFloat ?? [],
    floatByMeasurement: result.floatByMeasurement ?? [],
    notMeasured: result.notMeasured ?? [],
    metrics: result.metrics,
    prepare: calibrated.prepare,
    rewrites: calibrated.rewrites,
    seconds: (performance.now() - started) / 1000,
  };
  if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    process.stdout.write(
      `wrote ${flags.output} (${size} bytes, ${result.quantizedNodes} nodes quantized, float: ${JSON.stringify(result.floatOps)}) in ${summary.seconds.toFixed(1)} s\n`,
    );
  }
}
