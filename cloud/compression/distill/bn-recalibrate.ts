import { FleetError } from '../../../shared/errors/index.js';
import { attr, makeModel, makeValueInfo } from '../onnx/build.js';
import { encodeModel } from '../onnx/proto.js';
import { floatTensor } from '../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto } from '../onnx/types.js';
import { createSession, ort } from '../runtime/ort.js';
import { trainingForm } from './students/training-form.js';

export interface RecalibrateOptions {
  /** Samples per forward pass (each pass normalises with its own batch statistics); default 32. */
  chunk?: number;
  /** onnxruntime intra-op threads; default 0 (all cores). */
  intraOpThreads?: number;
}

export const DEFAULT_RECALIBRATE_OPTIONS = { chunk: 32, intraOpThreads: 0 } as const;

/**
 * A copy of `model` whose BatchNormalization running statistics are the population mean and
 * (biased) variance of each BN input over `x` ([count, ...sampleShape]): "precise BN". Running
 * averages kept during training follow the training data's size and augmentation; a model
 * trained on narrow crops and run on wider inputs (a text recogniser trained on 48×160 lines,
 * read at 48×320) normalises with statistics of another distribution. Each chunk runs the
 * training form (batch statistics) with momentum 0, so its updated running statistics are that
 * chunk's own; chunks are pooled by E[x²] − E[x]². A model without BN comes back unchanged.
 */
export async function recalibrateBatchNorm(
  model: ModelProto,
  x: Float32Array,
  count: number,
  sampleShape: number[],
  options: RecalibrateOptions = {},
): Promise<ModelProto> {
  const o = { ...DEFAULT_RECALIBRATE_OPTIONS, ...options };
  const size = sampleShape.reduce((a, b) => a * b, 1);
  if (count < 1 || x.length !== count * size)
    throw new FleetError(
      'INPUT_INVALID',
      `${count} samples do not fit ${x.length} floats of [${sampleShape}]`,
    );
  const form = trainingForm(model, 0, sampleShape);
  const stats = form.buffers;
  if (stats.length === 0) return model;
  const nodes: NodeProto[] = form.nodes.map((n) =>
    n.opType === 'BatchNormalization'
      ? {
          ...n,
          attribute: [...(n.attribute ?? []).filter((a) => a.name !== 'momentum'), attr.float('momentum', 0)],
        }
      : n,
  );
  const channels = (name: string) => Number(form.allInitializers.find((t) => t.name === name)!.dims![0]);
  const probe = makeModel(
    nodes,
    [makeValueInfo(form.input, DataType.FLOAT, ['N', ...sampleShape])],
    stats.map((b) => makeValueInfo(b.next, DataType.FLOAT, [channels(b.name)])),
    { opset: Math.max(17, form.opset), initializers: form.allInitializers },
  );
  const session = await createSession(encodeModel(probe), { intraOpThreads: o.intraOpThreads });
  // Per buffer: Σ n·mean for means; Σ n·(var + mean²) for variances (the mean is the buffer before it).
  const sums = stats.map((b) => new Float64Array(channels(b.name)));
  try {
    for (let start = 0; start < count; start += o.chunk) {
      const n = Math.min(o.chunk, count - start);
      const input = new ort.Tensor('float32', x.subarray(start * size, (start + n) * size), [
        n,
        ...sampleShape,
      ]);
      const out = await session.run({ [form.input]: input });
      for (let i = 0; i < stats.length; i += 2) {
        const mean = out[stats[i].next].data as Float32Array;
        const variance = out[stats[i + 1].next].data as Float32Array;
        for (let c = 0; c < mean.length; c++) {
          sums[i][c] += n * mean[c];
          sums[i + 1][c] += n * (variance[c] + mean[c] * mean[c]);
        }
      }
    }
  } finally {
    await session.release();
  }
  const values = new Map<string, Float32Array>();
  for (let i = 0; i < stats.length; i += 2) {
    const mean = Float32Array.from(sums[i], (v) => v / count);
    values.set(stats[i].name, mean);
    values.set(
      stats[i + 1].name,
      Float32Array.from(sums[i + 1], (v, c) => Math.max(0, v / count - mean[c] * mean[c])),
    );
  }
  const initializer = (model.graph.initializer ?? []).map((t) =>
    values.has(t.name!) ? floatTensor(t.name!, t.dims!.map(Number), values.get(t.name!)!) : t,
  );
  return { ...model, graph: { ...model.graph, initializer } };
}
