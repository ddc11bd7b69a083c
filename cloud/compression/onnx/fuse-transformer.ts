/**
 * Fuses what exporters decompose in transformers, so that quantization sees the graph
 * onnxruntime runs: onnxruntime fuses ReduceMean/Sub/Pow/Sqrt/Div into LayerNormalization and
 * Div/Erf/Add/Mul/Mul into Gelu on a float graph, but not once Q/DQ pairs sit between the
 * pieces; a quantizer that sees the pieces also quantizes their Mul/Add (with integer forms)
 * and the normalisation runs as a dozen int8 islands.
 */
import { attr, makeNode } from './build.js';
import { opsetVersion, pruneGraph, setOpset, sortGraph } from './edit.js';
import { attrInts, GraphIndex, NameGenerator } from './graph.js';
import { floatTensor, tensorFloats, tensorValues } from './tensor.js';
import type { ModelProto, NodeProto } from './types.js';

export interface FuseReport {
  layerNorms: number;
  gelus: number;
  /** Default-domain opset before (LayerNormalization needs 17). */
  fromOpset: number;
}

class Matcher {
  readonly index: GraphIndex;
  constructor(readonly model: ModelProto) {
    this.index = new GraphIndex(model.graph);
  }

  scalar(name: string | undefined): number | undefined {
    const t = name ? this.index.initializers.get(name) : undefined;
    if (!t) return undefined;
    const v = tensorValues(t);
    return v.length === 1 ? Number(v[0]) : undefined;
  }

  /** The only reader of `tensor` if it has one reader of type `op` and is no graph output. */
  only(tensor: string, op: string): NodeProto | undefined {
    const readers = this.index.consumersOf(tensor);
    if (readers.length !== 1 || this.index.graphOutputs.has(tensor)) return undefined;
    return readers[0].opType === op ? readers[0] : undefined;
  }

  /** The other input of a binary node. */
  other(node: NodeProto, tensor: string): string {
    return node.input[0] === tensor ? node.input[1] : node.input[0];
  }

  /** Reduction over the last axis only, keeping dims (axes as attribute or input). */
  lastAxisMean(node: NodeProto, rank: number | undefined): boolean {
    if (node.opType !== 'ReduceMean') return false;
    const keep = node.attribute?.find((a) => a.name === 'keepdims')?.i ?? 1;
    const axesInput = node.input[1] ? this.index.initializers.get(node.input[1]) : undefined;
    const axes = attrInts(node, 'axes') ?? (axesInput ? [...tensorValues(axesInput)].map(Number) : undefined);
    return (
      Number(keep) === 1 &&
      axes?.length === 1 &&
      (axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1))
    );
  }
}

/** LayerNorm pieces after ReduceMean `mean` of x; undefined unless the whole pattern matches. */
function matchLayerNorm(m: Matcher, mean: NodeProto, rank: number | undefined) {
  if (!m.lastAxisMean(mean, rank)) return undefined;
  const x = mean.input[0];
  const sub = m.only(mean.output[0], 'Sub');
  if (!sub || sub.input[0] !== x || sub.input[1] !== mean.output[0]) return undefined;
  const readers = m.index.consumersOf(sub.output[0]);
  const pow = readers.find((r) => r.opType === 'Pow' && m.scalar(r.input[1]) === 2);
  const div = readers.find((r) => r.opType === 'Div' && r.input[0] === sub.output[0]);
  if (readers.length !== 2 || !pow || !div) return undefined;
  const variance = m.only(pow.output[0], 'ReduceMean');
  if (!variance || !m.lastAxisMean(variance, rank)) return undefined;
  const addEps = m.only(variance.output[0], 'Add');
  const epsilon = addEps && m.scalar(m.other(addEps, variance.output[0]));
  const sqrt = addEps && m.only(addEps.output[0], 'Sqrt');
  if (epsilon === undefined || !sqrt || div.input[1] !== sqrt.output[0]) return undefined;
  const scaleNode = m.only(div.output[0], 'Mul');
  const gamma = scaleNode && m.index.initializers.get(m.other(scaleNode, div.output[0]));
  const biasNode = gamma && scaleNode ? m.only(scaleNode.output[0], 'Add') : undefined;
  const beta = biasNode && m.index.initializers.get(m.other(biasNode, scaleNode!.output[0]));
  const nodes = [mean, sub, pow, variance, addEps!, sqrt, div];
  if (gamma && scaleNode) nodes.push(scaleNode);
  if (beta && biasNode) nodes.push(biasNode);
  return {
    x,
    epsilon,
    gamma: gamma ? tensorFloats(gamma) : undefined,
    beta: beta ? tensorFloats(beta) : undefined,
    nodes,
  };
}

/** ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div[/Mul γ][/Add β] → LayerNormalization (opset 17). */
function fuseLayerNorms(
  model: ModelProto,
  rank: (t: string) => number | undefined,
  dim: (t: string) => number | undefined,
): number {
  const m = new Matcher(model);
  const names = new NameGenerator(model.graph);
  const removed = new Set<NodeProto>();
  const added: NodeProto[] = [];
  for (const node of model.graph.node) {
    if (removed.has(node) || node.opType !== 'ReduceMean') continue;
    const match = matchLayerNorm(m, node, rank(node.input[0]));
    const width = match?.gamma?.length ?? (match ? dim(match.x) : undefined);
    if (!match || !width || (match.beta && match.beta.length !== width)) continue;
    const last = match.nodes[match.nodes.length - 1];
    const scale = names.next(`${last.output[0]}_ln_scale`);
    const bias = names.next(`${last.output[0]}_ln_bias`);
    model.graph.initializer!.push(
      floatTensor(scale, [width], match.gamma ?? new Float32Array(width).fill(1)),
      floatTensor(bias, [width], match.beta ?? new Float32Array(width)),
    );
    const attrs = [attr.int('axis', -1), attr.float('epsilon', match.epsilon)];
    added.push(
      makeNode(
        'LayerNormalization',
        [match.x, scale, bias],
        [last.output[0]],
        attrs,
        names.next('LayerNorm'),
      ),
    );
    for (const n of match.nodes) removed.add(n);
  }
  model.graph.node = [...model.graph.node.filter((n) => !removed.has(n)), ...added];
  return added.length;
}

/** x·0.5·(1 + erf(x/√2)) in PyTorch's order (Div or Mul by 1/√2) → com.microsoft Gelu. */
function fuseGelus(model: ModelProto): number {
  const m = new Matcher(model);
  const names = new NameGenerator(model.graph);
  const removed = new Set<NodeProto>();
  const added: NodeProto[] = [];
  const near = (v: number | undefined, target: number) => v !== undefined && Math.abs(v - target) < 1e-4;
  for (const first of model.graph.node) {
    const byDiv = first.opType === 'Div' && near(m.scalar(first.input[1]), Math.SQRT2);
    const byMul = first.opType === 'Mul' && near(m.scalar(first.input[1]), Math.SQRT1_2);
    if (removed.has(first) || (!byDiv && !byMul)) continue;
    const x = first.input[0];
    const erf = m.only(first.output[0], 'Erf');
    const one = erf && m.only(erf.output[0], 'Add');
    if (!one || !near(m.scalar(m.other(one, erf!.output[0])), 1)) continue;
    const times = m.only(one.output[0], 'Mul');
    if (!times || m.other(times, one.output[0]) !== x) continue;
    const half = m.only(times.output[0], 'Mul');
    if (!half || !near(m.scalar(m.other(half, times.output[0])), 0.5)) continue;
    added.push(makeNode('Gelu', [x], [half.output[0]], [], names.next('Gelu'), 'com.microsoft'));
    for (const n of [first, erf!, one, times, half]) removed.add(n);
  }
  model.graph.node = [...model.graph.node.filter((n) => !removed.has(n)), ...added];
  return added.length;
}

/**
 * Fuses decomposed LayerNorm and GELU in place; upgrades the default opset to 17 when a
 * LayerNormalization was written. `shape` gives a tensor's dims when known (value_info).
 */
export function fuseTransformerOps(
  model: ModelProto,
  shape: (t: string) => number[] | undefined,
): FuseReport {
  const fromOpset = opsetVersion(model);
  model.graph.initializer ??= [];
  const rank = (t: string) => shape(t)?.length;
  const dim = (t: string) => {
    const d = shape(t)?.at(-1);
    return d && d > 0 ? d : undefined;
  };
  const layerNorms = fuseLayerNorms(model, rank, dim);
  const gelus = fuseGelus(model);
  if (layerNorms > 0 && fromOpset < 17) setOpset(model, '', 17);
  if (gelus > 0 && opsetVersion(model, 'com.microsoft') < 1) setOpset(model, 'com.microsoft', 1);
  if (layerNorms + gelus > 0) {
    pruneGraph(model.graph);
    sortGraph(model.graph);
  }
  return { layerNorms, gelus, fromOpset };
}
