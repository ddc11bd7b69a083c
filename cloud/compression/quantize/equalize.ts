import { attr, makeNode } from '../onnx/build.js';
import { opsetVersion } from '../onnx/edit.js';
import { attrInt, GraphIndex, NameGenerator } from '../onnx/graph.js';
import { encodeModel } from '../onnx/proto.js';
import { channelConstant, floatTensor, int64Tensor, tensorFloats } from '../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../onnx/types.js';
import { createSession } from '../runtime/ort.js';
import { batchTensor, headSamples, type SampleSet } from './calibrate/data.js';

/**
 * Folds Conv → Mul(c) → Add(d) with per-channel or scalar constants into the Conv
 * (W·c, b·c + d): exact, and each removed op is one requantisation less. PaddleOCR's
 * PP-LCNetV3 ("learnable affine blocks") puts such a pair after every convolution.
 */
export function foldAffineIntoConv(graph: GraphProto): number {
  const names = new NameGenerator(graph);
  let folded = 0;
  for (let changed = true; changed; ) {
    changed = false;
    const index = new GraphIndex(graph);
    for (const conv of graph.node) {
      if (conv.opType !== 'Conv') continue;
      const out = conv.output[0];
      const readers = index.consumersOf(out);
      if (readers.length !== 1 || index.graphOutputs.has(out)) continue;
      const op = readers[0];
      if (op.opType !== 'Mul' && op.opType !== 'Add') continue;
      const wt = index.initializers.get(conv.input[1]);
      const bt = conv.input[2] ? index.initializers.get(conv.input[2]) : undefined;
      if (!wt || (conv.input[2] && !bt)) continue;
      const channels = wt.dims![0];
      const other = op.input[0] === out ? op.input[1] : op.input[0];
      const c = channelConstant(index.initializers.get(other), channels, 4);
      if (!c) continue;
      const w = tensorFloats(wt);
      const b = bt ? tensorFloats(bt) : new Float32Array(channels);
      const per = w.length / channels;
      if (op.opType === 'Mul') {
        for (let k = 0; k < channels; k++) {
          for (let i = 0; i < per; i++) w[k * per + i] *= c[k];
          b[k] *= c[k];
        }
      } else for (let k = 0; k < channels; k++) b[k] += c[k];
      const wName = names.next(`${conv.input[1]}_affine`);
      const bName = names.next(`${op.output[0]}_bias`);
      graph.initializer!.push(floatTensor(wName, wt.dims!, w), floatTensor(bName, [channels], b));
      conv.input = [conv.input[0], wName, bName];
      conv.output = [op.output[0]];
      graph.node = graph.node.filter((n) => n !== op);
      folded++;
      changed = true;
      break;
    }
  }
  return folded;
}

export interface EqualizeOptions {
  /** Samples used to measure per-channel activation ranges; default 4. */
  samples: number;
  /** Bounds of the per-channel scale factor, against numerical blow-up; default 1e-2..1e2. */
  minScale: number;
  maxScale: number;
}

export const DEFAULT_EQUALIZE_OPTIONS: EqualizeOptions = { samples: 4, minScale: 1e-2, maxScale: 1e2 };

/**
 * max |x| per channel (axis 1) of each tensor over the samples, reduced inside onnxruntime so
 * that only [C] vectors leave it (copying 640×640 activations out cost seconds).
 */
async function channelAbsMax(model: ModelProto, tensors: string[], data: SampleSet): Promise<Float32Array[]> {
  const names = new NameGenerator(model.graph);
  const axesAsInput = opsetVersion(model) >= 18;
  const rank = new Map(
    (model.graph.valueInfo ?? []).map((v) => [v.name, v.type?.tensorType?.shape?.dim?.length ?? 4]),
  );
  const nodes: NodeProto[] = [];
  const constants: TensorProto[] = [];
  const outputs = tensors.map((t) => {
    const abs = names.next(`${t}_cle_abs`);
    const out = names.next(`${t}_cle_max`);
    // Every axis but the channel axis 1 (Conv outputs are [N, C, ...spatial]).
    const reduce = Array.from({ length: rank.get(t) ?? 4 }, (_, i) => i).filter((i) => i !== 1);
    const axes = names.next(`${t}_cle_axes`);
    constants.push(int64Tensor(axes, [reduce.length], reduce));
    nodes.push(
      makeNode('Abs', [t], [abs], [], abs),
      makeNode(
        'ReduceMax',
        axesAsInput ? [abs, axes] : [abs],
        [out],
        axesAsInput ? [attr.int('keepdims', 0)] : [attr.ints('axes', reduce), attr.int('keepdims', 0)],
        out,
      ),
    );
    return out;
  });
  const probe: ModelProto = {
    ...model,
    graph: {
      ...model.graph,
      node: [...model.graph.node, ...nodes],
      initializer: [...(model.graph.initializer ?? []), ...(axesAsInput ? constants : [])],
      output: outputs.map((name) => ({ name })),
    },
  };
  const session = await createSession(encodeModel(probe), { allowSpinning: false });
  try {
    const result = tensors.map(() => new Float32Array(0));
    for (let s = 0; s < data.count; s++) {
      const r = await session.run({ [session.inputNames[0]]: batchTensor(data, s, 1) }, outputs);
      outputs.forEach((name, i) => {
        const v = r[name].data as Float32Array;
        result[i] =
          result[i].length === 0 ? Float32Array.from(v) : result[i].map((m, k) => Math.max(m, v[k]));
      });
    }
    return result;
  } finally {
    await session.release();
  }
}

interface Pair {
  first: NodeProto;
  second: NodeProto;
  /** A ReLU between them (positively homogeneous, so scaling passes through it). */
  relu?: NodeProto;
}

/** Conv → [Relu] → Conv(group 1) chains where the first output feeds only the second. */
function equalizablePairs(graph: GraphProto): Pair[] {
  const index = new GraphIndex(graph);
  const pairs: Pair[] = [];
  const only = (t: string) => {
    const r = index.consumersOf(t);
    return r.length === 1 && !index.graphOutputs.has(t) ? r[0] : undefined;
  };
  for (const first of graph.node) {
    if (first.opType !== 'Conv' || !index.isInitializer(first.input[1])) continue;
    if (first.input[2] && !index.isInitializer(first.input[2])) continue;
    let next = only(first.output[0]);
    let relu: NodeProto | undefined;
    if (next?.opType === 'Relu') {
      relu = next;
      next = only(next.output[0]);
    }
    if (next?.opType !== 'Conv' || attrInt(next, 'group', 1) !== 1 || !index.isInitializer(next.input[1]))
      continue;
    pairs.push({ first, second: next, relu });
  }
  return pairs;
}

/**
 * Cross-layer equalisation (Nagel et al. 2019) driven by activations: for Conv1 → Conv2 with
 * nothing (or a ReLU) between, output channel k of Conv1 is divided by s_k and input channel
 * k of Conv2 multiplied by s_k, with s_k = √(a_k / w_k) where a_k is the measured range of
 * channel k and w_k the range of Conv2's weights reading it. The function is unchanged; the
 * per-tensor activation range shrinks to the balanced one, which is what per-tensor int8
 * loses on after depthwise convolutions. Returns the number of equalised pairs.
 */
export async function equalizeCrossLayer(
  model: ModelProto,
  data: SampleSet,
  options: Partial<EqualizeOptions> = {},
): Promise<number> {
  const o = { ...DEFAULT_EQUALIZE_OPTIONS, ...options };
  const graph = model.graph;
  const pairs = equalizablePairs(graph);
  if (pairs.length === 0) return 0;
  const measured = pairs.map((p) => p.first.output[0]);
  const probe = headSamples(data, o.samples);
  const ranges = await channelAbsMax(model, measured, probe);
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  let done = 0;
  for (const [i, { first, second }] of pairs.entries()) {
    const a = ranges[i];
    const c = a.length;
    const w1t = index.initializers.get(first.input[1])!;
    const w2t = index.initializers.get(second.input[1])!;
    const w1 = tensorFloats(w1t);
    const w2 = tensorFloats(w2t);
    const [cout2, cin2] = [w2t.dims![0], w2t.dims![1]];
    if (cin2 !== c || w1t.dims![0] !== c) continue;
    const k2 = w2.length / (cout2 * cin2);
    const r2 = new Float32Array(c);
    for (let out = 0; out < cout2; out++)
      for (let k = 0; k < c; k++)
        for (let j = 0; j < k2; j++) r2[k] = Math.max(r2[k], Math.abs(w2[(out * cin2 + k) * k2 + j]));
    const s = Float32Array.from(a, (ak, k) =>
      ak > 0 && r2[k] > 0 ? Math.min(o.maxScale, Math.max(o.minScale, Math.sqrt(ak / r2[k]))) : 1,
    );
    const per1 = w1.length / c;
    for (let k = 0; k < c; k++) for (let j = 0; j < per1; j++) w1[k * per1 + j] /= s[k];
    for (let out = 0; out < cout2; out++)
      for (let k = 0; k < c; k++) for (let j = 0; j < k2; j++) w2[(out * cin2 + k) * k2 + j] *= s[k];
    const w1Name = names.next(`${first.input[1]}_cle`);
    const w2Name = names.next(`${second.input[1]}_cle`);
    graph.initializer!.push(floatTensor(w1Name, w1t.dims!, w1), floatTensor(w2Name, w2t.dims!, w2));
    first.input[1] = w1Name;
    second.input[1] = w2Name;
    if (first.input[2]) {
      const b = tensorFloats(index.initializers.get(first.input[2])!);
      const bName = names.next(`${first.input[2]}_cle`);
      graph.initializer!.push(
        floatTensor(
          bName,
          [c],
          b.map((v, k) => v / s[k]),
        ),
      );
      first.input[2] = bName;
    }
    done++;
  }
  return done;
}
