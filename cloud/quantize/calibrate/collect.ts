import { FleetError } from '../../../shared/errors/index.js';
import { withExtraOutputs } from '../../onnx/ort-eval.js';
import { encodeModel } from '../../onnx/proto.js';
import type { ModelProto } from '../../onnx/types.js';
import { createSession } from '../../runtime/ort.js';
import { batchTensor, type SampleSet } from './data.js';
import { TensorStats } from './histogram.js';

export interface CollectOptions {
  /** Samples per onnxruntime run; memory grows with it (every listed tensor is copied out). Default 8. */
  batchSize: number;
  /** Keep |x| histograms (percentile/entropy/mse need them); default true. */
  histogram: boolean;
  /** At most this many values per tensor and batch enter the histogram (strided sample); default 65536. */
  histogramSamplesPerBatch: number;
  /** Histogram bins; default 2048 (as TensorRT). */
  bins: number;
  /** Threads for onnxruntime; default 0 (all cores). */
  threads: number;
  /** Called after each batch with (samples done, total). */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_COLLECT_OPTIONS: CollectOptions = {
  batchSize: 8,
  histogram: true,
  histogramSamplesPerBatch: 65536,
  bins: 2048,
  threads: 0,
};

/** The model's fixed batch dimension, if its input declares one. */
function fixedBatch(model: ModelProto): number | undefined {
  const dim = model.graph.input?.[0]?.type?.tensorType?.shape?.dim?.[0];
  return dim?.dimValue && dim.dimValue > 0 ? dim.dimValue : undefined;
}

/**
 * Runs the calibration samples through onnxruntime with the given tensors exposed as
 * outputs, batch by batch, and accumulates streaming statistics per tensor (bounded memory:
 * one batch of activations at a time plus a fixed-size histogram per tensor).
 */
export async function collectStatistics(
  model: ModelProto,
  tensors: readonly string[],
  data: SampleSet,
  options: Partial<CollectOptions> = {},
): Promise<Map<string, TensorStats>> {
  const o = { ...DEFAULT_COLLECT_OPTIONS, ...options };
  const inputs = (model.graph.input ?? []).filter((i) => !(model.graph.initializer ?? []).some((t) => t.name === i.name));
  if (inputs.length !== 1) {
    throw new FleetError('CALIBRATION_DATA', `calibration supports models with one input; this one has ${inputs.length}`);
  }
  const inputName = inputs[0].name;
  const probe = withExtraOutputs(model, tensors);
  const session = await createSession(encodeModel(probe), {
    graphOptimizationLevel: 'basic',
    intraOpThreads: o.threads,
  });
  const stats = new Map<string, TensorStats>();
  for (const t of tensors) stats.set(t, new TensorStats(o.bins, o.histogram));
  const batch = fixedBatch(model) ?? o.batchSize;
  try {
    for (let start = 0; start < data.count; start += batch) {
      const x = batchTensor(data, start, batch);
      let results: Awaited<ReturnType<typeof session.run>>;
      try {
        results = await session.run({ [inputName]: x }, [...tensors]);
      } catch (error) {
        throw new FleetError(
          'CALIBRATION_DATA',
          `calibration batch at sample ${start} (shape [${x.dims}]) failed: ${(error as Error).message}`,
        );
      }
      for (const t of tensors) {
        const values = results[t].data;
        if (!(values instanceof Float32Array)) continue;
        const stride = Math.max(1, Math.floor(values.length / o.histogramSamplesPerBatch));
        stats.get(t)!.update(values, stride);
      }
      o.onProgress?.(Math.min(start + batch, data.count), data.count);
    }
  } finally {
    await session.release();
  }
  return stats;
}
