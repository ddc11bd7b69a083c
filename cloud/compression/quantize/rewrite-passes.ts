/**
 * Float-exact rewrites that give the quantizer ops with integer forms. Each pass edits the
 * graph through a RewriteContext and returns its counts by kind.
 */
import { attr, makeNode } from '../onnx/build.js';
import { attrFloat, attrInt } from '../onnx/graph.js';
import type { NodeProto } from '../onnx/types.js';
import type { RewriteContext } from './rewrite.js';

/** x / c → x · (1/c); x − c → x + (−c) (Mul and Add have integer forms, Div and Sub do not). */
export function divSubToMulAdd(ctx: RewriteContext): Record<string, number> {
  const counts = { divToMul: 0, subToAdd: 0 };
  for (const node of ctx.graph.node) {
    if ((node.opType !== 'Div' && node.opType !== 'Sub') || !node.input[1]) continue;
    const c = ctx.constant(node.input[1]);
    if (!c || c.some((v) => v === 0)) continue;
    const dims = ctx.index.initializers.get(node.input[1])!.dims ?? [];
    const div = node.opType === 'Div';
    const values = div ? c.map((v) => 1 / v) : c.map((v) => -v);
    node.input[1] = ctx.addConstant(`${node.input[1]}_${div ? 'reciprocal' : 'negated'}`, dims, values);
    node.opType = div ? 'Mul' : 'Add';
    counts[div ? 'divToMul' : 'subToAdd']++;
  }
  return counts;
}

/** HardSwish(x) → x · HardSigmoid(x; 1/6, 1/2). */
export function expandHardSwish(ctx: RewriteContext): Record<string, number> {
  const extra: NodeProto[] = [];
  for (const node of ctx.graph.node) {
    if (node.opType !== 'HardSwish') continue;
    const hs = ctx.names.next(`${node.output[0]}_hardsigmoid`);
    const attrs = [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)];
    extra.push(makeNode('HardSigmoid', [node.input[0]], [hs], attrs, hs));
    node.opType = 'Mul';
    node.input = [node.input[0], hs];
  }
  ctx.graph.node.push(...extra);
  return { hardSwish: extra.length };
}

/** Whether HardSigmoid's α, β can fold into the Conv/Gemm that alone feeds it. */
function hardSigmoidFoldable(ctx: RewriteContext, node: NodeProto): NodeProto | undefined {
  const x = node.input[0];
  const producer = ctx.index.producer.get(x);
  if (!producer || attrFloat(node, 'alpha', 0.2) <= 0) return undefined;
  const gemm = producer.opType === 'Gemm' && attrInt(producer, 'transB', 0) === 1;
  if (producer.opType !== 'Conv' && !gemm) return undefined;
  if (!ctx.constant(producer.input[1] ?? '')) return undefined;
  if (ctx.index.consumersOf(x).length !== 1 || ctx.index.graphOutputs.has(x)) return undefined;
  if (producer.input[2] && !ctx.constant(producer.input[2])) return undefined;
  return producer;
}

/**
 * HardSigmoid(x) = clip(αx + β, 0, 1): α, β fold into the producing Conv/Gemm when it has no
 * other reader, else become Mul/Add (each has an integer form); the Clip(0, 1) left is absorbed
 * by quantization.
 */
export function foldHardSigmoid(ctx: RewriteContext): Record<string, number> {
  const counts = { hardSigmoidFolded: 0, hardSigmoidExpanded: 0 };
  const added: NodeProto[] = [];
  for (const node of ctx.graph.node) {
    if (node.opType !== 'HardSigmoid') continue;
    const alpha = attrFloat(node, 'alpha', 0.2);
    const beta = attrFloat(node, 'beta', 0.5);
    const x = node.input[0];
    const producer = hardSigmoidFoldable(ctx, node);
    if (producer) {
      const wt = ctx.index.initializers.get(producer.input[1])!;
      const w = ctx.constant(producer.input[1])!;
      const channels = wt.dims![0];
      const b = producer.input[2] ? ctx.constant(producer.input[2])! : new Float32Array(channels);
      producer.input[1] = ctx.addConstant(
        `${producer.input[1]}_hsfold`,
        wt.dims!,
        w.map((v) => v * alpha),
      );
      producer.input[2] = ctx.addConstant(
        `${producer.output[0]}_hsbias`,
        [channels],
        b.map((v) => v * alpha + beta),
      );
      counts.hardSigmoidFolded++;
    } else {
      const scaled = ctx.names.next(`${x}_scaled`);
      const shifted = ctx.names.next(`${x}_shifted`);
      const a = ctx.addConstant(`${node.output[0]}_alpha`, [], [alpha]);
      const bt = ctx.addConstant(`${node.output[0]}_beta`, [], [beta]);
      added.push(
        makeNode('Mul', [x, a], [scaled], [], ctx.names.next(`${scaled}_mul`)),
        makeNode('Add', [scaled, bt], [shifted], [], ctx.names.next(`${shifted}_add`)),
      );
      node.input[0] = shifted;
      counts.hardSigmoidExpanded++;
    }
    node.opType = 'Clip';
    node.attribute = [];
    const lo = ctx.addConstant(`${node.output[0]}_lo`, [], [0]);
    const hi = ctx.addConstant(`${node.output[0]}_hi`, [], [1]);
    node.input = [node.input[0], lo, hi];
  }
  ctx.graph.node.push(...added);
  return counts;
}

/**
 * x + x·g → x·(1 + g) when the gate g = Clip(Conv(…), lo, hi) is read only by that Mul: the 1
 * folds into the Conv's bias and the Clip's bounds, so a full-resolution Add (an int8 add with
 * its own requantisation) goes away. PP-OCR's residual squeeze-excitation layers have this
 * form (8 in the detector's neck, once their HardSigmoid is folded).
 */
export function foldResidualGate(ctx: RewriteContext): Record<string, number> {
  const removed = new Set<NodeProto>();
  for (const add of ctx.graph.node) {
    if (add.opType !== 'Add') continue;
    for (const k of [0, 1]) {
      const x = add.input[k];
      const mul = ctx.index.producer.get(add.input[1 - k]);
      if (mul?.opType !== 'Mul' || !mul.input.includes(x) || !soleReader(ctx, mul.output[0])) continue;
      const gate = mul.input[0] === x ? mul.input[1] : mul.input[0];
      if (gate === x || !shiftGate(ctx, gate, 1)) continue;
      mul.output = [add.output[0]];
      removed.add(add);
      break;
    }
  }
  ctx.graph.node = ctx.graph.node.filter((n) => !removed.has(n));
  return { residualGateFolded: removed.size };
}

/** Whether `t` has exactly one reader and is not a graph output. */
function soleReader(ctx: RewriteContext, t: string): boolean {
  return ctx.index.consumersOf(t).length === 1 && !ctx.index.graphOutputs.has(t);
}

/** gate = Clip(Conv(…), lo, hi) → Clip(Conv'(…), lo + by, hi + by), Conv' with bias + by; false if not that form. */
function shiftGate(ctx: RewriteContext, gate: string, by: number): boolean {
  const clip = ctx.index.producer.get(gate);
  if (clip?.opType !== 'Clip' || !soleReader(ctx, gate)) return false;
  const lo = ctx.constant(clip.input[1] ?? '');
  const hi = ctx.constant(clip.input[2] ?? '');
  const conv = ctx.index.producer.get(clip.input[0]);
  if (lo?.length !== 1 || hi?.length !== 1 || conv?.opType !== 'Conv' || !soleReader(ctx, clip.input[0]))
    return false;
  const channels = ctx.index.initializers.get(conv.input[1])?.dims?.[0];
  const bias = conv.input[2] ? ctx.constant(conv.input[2]) : new Float32Array(channels ?? 0);
  if (!channels || bias?.length !== channels) return false;
  conv.input[2] = ctx.addConstant(
    `${conv.output[0]}_gatebias`,
    [channels],
    bias.map((v) => v + by),
  );
  clip.input[1] = ctx.addConstant(`${gate}_lo`, [], [lo[0] + by]);
  clip.input[2] = ctx.addConstant(`${gate}_hi`, [], [hi[0] + by]);
  return true;
}

/** MatMul(x[N,K], W[K,M]) + b[M] → Gemm (one fused int8 op with an int32 bias). */
export function matMulAddToGemm(ctx: RewriteContext): Record<string, number> {
  const removed = new Set<NodeProto>();
  const { index } = ctx;
  for (const node of ctx.graph.node) {
    if (node.opType !== 'MatMul' || ctx.rank(node.input[0]) !== 2) continue;
    const w = index.initializers.get(node.input[1]);
    if (w?.dims?.length !== 2) continue;
    const readers = index.consumersOf(node.output[0]);
    if (readers.length !== 1 || readers[0].opType !== 'Add' || index.graphOutputs.has(node.output[0]))
      continue;
    const add = readers[0];
    const biasName = add.input[0] === node.output[0] ? add.input[1] : add.input[0];
    const bias = ctx.constant(biasName);
    if (!bias || bias.length !== w.dims[1]) continue;
    node.opType = 'Gemm';
    node.input = [node.input[0], node.input[1], ctx.addConstant(`${biasName}_gemm`, [bias.length], bias)];
    node.output = [add.output[0]];
    removed.add(add);
  }
  ctx.graph.node = ctx.graph.node.filter((n) => !removed.has(n));
  return { matMulAddToGemm: removed.size };
}
