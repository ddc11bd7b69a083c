import { FleetError } from '../../../../shared/errors/index.js';
import { attr, makeNode } from '../../onnx/build.js';
import { NameGenerator } from '../../onnx/graph.js';
import { withExtraOutputs } from '../../onnx/ort-eval.js';
import { encodeModel } from '../../onnx/proto.js';
import type { ModelProto } from '../../onnx/types.js';
import { createSession } from '../../runtime/ort.js';
import { batchTensor, type SampleSet } from './data.js';
import { TensorStats } from './histogram.js';

export interface CollectOptions {
  /**
   * Samples per onnxruntime run; memory grows with it. Default 0 = automatic: as many samples
   * as fit in about 1 M input values (32 MNIST digits, 1 detector image of 640×640).
   */
  batchSize: number;
  /** Keep |x| histograms (percentile/entropy/mse need them); default true. */
  histogram: boolean;
  /** At most this many values per tensor and batch enter the histogram (strided sample); default 65536. */
  histogramSamplesPerBatch: number;
  /** Histogram bins; default 2048 (as TensorRT). */
  bins: number;
  /** Threads for onnxruntime; default 0 (all cores). */
  threads: number;
  /** onnxruntime graph optimisation of the calibration session; default 'all'. */
  optimization: 'basic' | 'all';
  /** Called after each batch with (samples done, total). */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_COLLECT_OPTIONS: CollectOptions = {
  batchSize: 0,
  histogram: true,
  histogramSamplesPerBatch: 65536,
  bins: 2048,
  threads: 0,
  optimization: 'all',
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
  const inputs = (model.graph.input ?? []).filter(
    (i) => !(model.graph.initializer ?? []).some((t) => t.name === i.name),
  );
  if (inputs.length !== 1) {
    throw new FleetError(
      'CALIBRATION_DATA',
      `calibration supports models with one input; this one has ${inputs.length}`,
    );
  }
  const inputName = inputs[0].name;
  // Without histograms only min/max are needed: reduce inside onnxruntime so that no
  // activation is copied out to JavaScript (the expensive part on large models).
  const reduced = new Map<string, [string, string]>();
  let probe: ModelProto;
  if (o.histogram) probe = withExtraOutputs(model, tensors);
  else {
    const names = new NameGenerator(model.graph);
    const nodes = tensors.flatMap((t) => {
      const lo = names.next(`${t}_calib_min`);
      const hi = names.next(`${t}_calib_max`);
      reduced.set(t, [lo, hi]);
      return [
        makeNode('ReduceMin', [t], [lo], [attr.int('keepdims', 0)], lo),
        makeNode('ReduceMax', [t], [hi], [attr.int('keepdims', 0)], hi),
      ];
    });
    probe = withExtraOutputs(
      { ...model, graph: { ...model.graph, node: [...model.graph.node, ...nodes] } },
      [...reduced.values()].flat(),
    );
  }
  const fetches = o.histogram ? [...tensors] : [...reduced.values()].flat();
  const session = await createSession(encodeModel(probe), {
    graphOptimizationLevel: o.optimization,
    intraOpThreads: o.threads,
    allowSpinning: false,
  });
  const stats = new Map<string, TensorStats>();
  for (const t of tensors) stats.set(t, new TensorStats(o.bins, o.histogram));
  const perSample = data.sampleShape.reduce((a, b) => a * b, 1);
  const batch =
    fixedBatch(model) ??
    (o.batchSize > 0 ? o.batchSize : Math.max(1, Math.min(32, Math.floor(2 ** 20 / perSample))));
  try {
    for (let start = 0; start < data.count; start += batch) {
      const x = batchTensor(data, start, batch);
      let results: Awaited<ReturnType<typeof session.run>>;
      try {
        results = await session.run({ [inputName]: x }, fetches);
      } catch (error) {
        throw new FleetError(
          'CALIBRATION_DATA',
          `calibration batch at sample ${start} (shape [${x.dims}]) failed: ${(error as Error).message}`,
        );
      }
      for (const t of tensors) {
        const pair = reduced.get(t);
        const values = pair
          ? Float32Array.of(results[pair[0]].data[0] as number, results[pair[1]].data[0] as number)
          : results[t].data;
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
