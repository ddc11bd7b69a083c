import { makeNode } from '../onnx/build.js';
import { attrString } from '../onnx/graph.js';
import { makeTensor } from '../onnx/tensor.js';
import { DataType, type NodeProto } from '../onnx/types.js';
import type { RewriteContext } from './rewrite.js';

/**
 * x86 kernel rewrites that keep an op in NCHW under onnxruntime's int8 layout transformer, which
 * moves everything after an int8 convolution into NHWC. A no-op Reshape (shape [0, 0, 0, 0]:
 * every dimension kept) in front of an op stops it: the transformer does not take a Reshape, and
 * the int8 Reshape is a follower of its input's scale (no requantisation). onnxruntime adds the
 * transposes around the op; measured on the PP-OCR detector, they cost less than they save.
 */

/**
 * An x86 kernel rewrite, exact in float: nearest upsampling by 2^k of an NCHW tensor becomes k
 * upsamplings by 2, behind a no-op Reshape (shape [0, 0, 0, 0]: every dimension kept).
 *
 * Why: onnxruntime's int8 layout transformer moves a Resize that follows int8 convolutions into
 * NHWC, where nearest upsampling takes a generic per-element path: 2.0 ms for [1, 80, 80, 48] →
 * [1, 160, 160, 48] in the PP-OCR detector's neck, 4.4 ms for its six resizes. In NCHW a Resize
 * by exactly 2 has a fast kernel (0.05 ms for the same tensor; all six: 0.2 ms).
 * Only asymmetric/floor nearest (what PyTorch and paddle2onnx export) with constant scales
 * [1, 1, 2^k, 2^k] is rewritten: floor(floor(x / 2) / 2) = floor(x / 4), so chaining is exact.
 */
export function nchwNearestResize(ctx: RewriteContext): Record<string, number> {
  let resizes = 0;
  for (const node of [...ctx.graph.node]) {
    const steps = doublings(ctx, node);
    if (steps === undefined) continue;
    const reshape = keepNchw(ctx, node.input[0]);
    const chain: NodeProto[] = [reshape];
    const two = ctx.addConstant(`${node.output[0]}_scales2`, [4], [1, 1, 2, 2]);
    let x = reshape.output[0];
    for (let i = 1; i < steps; i++) {
      const y = ctx.names.next(`${node.output[0]}_x${2 ** i}`);
      chain.push(makeNode('Resize', [x, '', two], [y], node.attribute ?? [], y));
      x = y;
    }
    node.input = [x, '', two];
    ctx.graph.node.splice(ctx.graph.node.indexOf(node), 0, ...chain);
    resizes++;
  }
  return { resizeKeptNchw: resizes };
}

/**
 * An x86 kernel rewrite, exact: the input x of a channel gate x·g, g computed from a
 * GlobalAveragePool of shape [N, C, 1, 1] (squeeze-excitation), is kept NCHW when x's maps have
 * at least GATE_MIN_PIXELS pixels. In NHWC onnxruntime's int8 Mul broadcasts g over spans of C
 * bytes (0.61 ms for [1, 160, 160, 12] in the PP-OCR detector's neck); in NCHW over spans of
 * H·W. On small maps the transposes cost more than the broadcast: the PaddleOCR classifier
 * (maps of at most 24×96) got slower with every gate kept NCHW (×0.60 → ×0.82 of FP32).
 */
export function nchwChannelGates(ctx: RewriteContext): Record<string, number> {
  let gates = 0;
  for (const node of [...ctx.graph.node]) {
    if (node.opType !== 'Mul') continue;
    const g = node.input.findIndex((t) => fromGlobalPool(ctx, t, 8));
    const x = 1 - g;
    if (g < 0 || ctx.rank(node.input[x]) !== 4 || fromGlobalPool(ctx, node.input[x], 8)) continue;
    const [, , h, w] = ctx.shape(node.input[x]) ?? [];
    if (!(h * w >= GATE_MIN_PIXELS)) continue;
    const reshape = keepNchw(ctx, node.input[x]);
    ctx.graph.node.splice(ctx.graph.node.indexOf(node), 0, reshape);
    node.input[x] = reshape.output[0];
    gates++;
  }
  return { gateKeptNchw: gates };
}

/** Maps smaller than this (H·W) keep their gates in NHWC: 128², between the classifier's and the detector's 160². */
const GATE_MIN_PIXELS = 128 * 128;

/** Ops a squeeze-excitation gate passes through between its pooling and the Mul. */
const GATE_OPS = new Set(['Conv', 'Relu', 'Clip', 'HardSigmoid', 'Sigmoid', 'Add', 'Mul']);

/**
 * Whether `t` is computed from a GlobalAveragePool through at most `hops` gate ops, every input
 * that is not a constant coming from the pool too (so a feature map times a gate is not one).
 */
function fromGlobalPool(ctx: RewriteContext, t: string, hops: number): boolean {
  const producer = ctx.index.producer.get(t);
  if (!producer || hops === 0) return false;
  if (producer.opType === 'GlobalAveragePool') return true;
  if (!GATE_OPS.has(producer.opType)) return false;
  const inputs = producer.input.filter((i) => i && !ctx.index.initializers.has(i));
  return inputs.length > 0 && inputs.every((i) => fromGlobalPool(ctx, i, hops - 1));
}

/** k when `node` is an asymmetric/floor nearest Resize of a rank-4 tensor by [1, 1, 2^k, 2^k]; else undefined. */
function doublings(ctx: RewriteContext, node: NodeProto): number | undefined {
  if (node.opType !== 'Resize' || (node.domain ?? '') !== '' || ctx.rank(node.input[0]) !== 4)
    return undefined;
  if ((attrString(node, 'mode') ?? 'nearest') !== 'nearest') return undefined;
  if (attrString(node, 'coordinate_transformation_mode') !== 'asymmetric') return undefined;
  if (attrString(node, 'nearest_mode') !== 'floor') return undefined;
  if (node.input[3] || !node.input[2]) return undefined;
  const scales = ctx.constant(node.input[2]);
  if (scales?.length !== 4 || scales[0] !== 1 || scales[1] !== 1 || scales[2] !== scales[3]) return undefined;
  const k = Math.log2(scales[2]);
  return Number.isInteger(k) && k >= 1 && k <= 5 ? k : undefined;
}

/** A Reshape of `t` to [0, 0, 0, 0] (every dimension kept), not yet in the graph; the int64 shape is added once. */
function keepNchw(ctx: RewriteContext, t: string): NodeProto {
  const shape = 'fleetml_keep_shape4';
  if (!ctx.graph.initializer!.some((i) => i.name === shape))
    ctx.graph.initializer!.push(makeTensor(shape, DataType.INT64, [4], new BigInt64Array(4)));
  const kept = ctx.names.next(`${t}_nchw`);
  return makeNode('Reshape', [t, shape], [kept], [], kept);
}
