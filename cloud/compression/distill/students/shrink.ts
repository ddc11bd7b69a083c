import { FleetError } from '../../../../shared/errors/index.js';
import { attr } from '../../onnx/build.js';
import { makeTensor, tensorFloats } from '../../onnx/tensor.js';
import { DataType, type ModelProto, type NodeProto, type TensorProto } from '../../onnx/types.js';
import { ort } from '../../runtime/ort.js';
import { inferShapes } from '../autodiff/shapes.js';
import { type ChannelGroup, channelGroups } from './channel-groups.js';

/** What `shrinkModel` did to each channel group. */
export interface ShrinkReport {
  groups: { size: number; kept: number; fixed: boolean; by: 'bn-scale' | 'filter-norm' }[];
  parametersBefore: number;
  parametersAfter: number;
}

/** Parses `shrink:<width>` (0 < width ≤ 1); undefined for other specs. */
export function parseShrink(spec: string): number | undefined {
  const m = /^shrink:(.*)$/.exec(spec);
  if (!m) return undefined;
  const width = Number(m[1]);
  if (!(width > 0 && width <= 1)) {
    throw new FleetError(
      'INPUT_INVALID',
      `--student ${spec}: the width must be a number in (0, 1], e.g. shrink:0.5`,
    );
  }
  return width;
}

/**
 * The teacher's own graph with every prunable channel group narrowed to `width` of its
 * channels (at least one), keeping the channels the teacher weighs most: by BatchNorm scale
 * |γ| where the group has BatchNorm, else by the L2 norm of the filters that produce it.
 * Groups coupled by residual additions or channel-wise products are narrowed as one; groups
 * that reach the graph's inputs, outputs or an op the analysis does not know keep their width.
 */
export async function shrinkModel(
  teacher: ModelProto,
  width: number,
  sampleShape: number[],
): Promise<{ model: ModelProto; report: ShrinkReport }> {
  const graph = teacher.graph;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const inputs = (graph.input ?? []).filter((i) => !inits.has(i.name));
  const feeds = {
    [inputs[0].name]: new ort.Tensor('float32', new Float32Array(size(sampleShape)), [1, ...sampleShape]),
  };
  const shapes = await inferShapes(teacher, feeds);
  const groups = channelGroups(graph, shapes);
  const cuts = new Map<string, Cut[]>();
  const groupOf = new Map<NodeProto, number>();
  const report: ShrinkReport = { groups: [], parametersBefore: countFloats(inits), parametersAfter: 0 };
  for (const g of groups) {
    const kept = g.fixed ? g.size : Math.max(1, Math.round(g.size * width));
    report.groups.push({
      size: g.size,
      kept,
      fixed: g.fixed,
      by: g.bnScales.length ? 'bn-scale' : 'filter-norm',
    });
    if (kept === g.size) continue;
    for (const node of g.depthwise) groupOf.set(node, kept);
    // Importance from the teacher's own tensors, whatever other groups keep of them.
    const keep = topChannels(
      importance(g, (n) => inits.get(n)!),
      kept,
    );
    for (const b of g.bindings) {
      if (!cuts.has(b.tensor)) cuts.set(b.tensor, []);
      cuts.get(b.tensor)!.push({ ...b, size: g.size, keep });
    }
  }
  const initializer = (graph.initializer ?? []).map((t) =>
    cuts.has(t.name!) ? narrow(t, cuts.get(t.name!)!) : t,
  );
  report.parametersAfter = countFloats(new Map(initializer.map((t) => [t.name!, t])));
  const model: ModelProto = {
    ...teacher,
    graph: {
      ...graph,
      name: `${graph.name ?? 'model'}_shrink${width}`,
      initializer,
      node: graph.node.map((n) => (groupOf.has(n) ? withGroup(n, groupOf.get(n)!) : n)),
      input: inputs,
      valueInfo: [],
    },
  };
  return { model, report };
}

/** A group's channels kept in one tensor: `size` channels along `axis` from `offset`, of which `keep`. */
interface Cut {
  axis: number;
  block: number;
  offset: number;
  size: number;
  keep: readonly number[];
}

/** Applies every group's cut to a tensor; channels outside all cuts (unnarrowed groups) stay. */
function narrow(t: TensorProto, cuts: readonly Cut[]): TensorProto {
  const axes = new Map<string, Cut[]>();
  for (const c of cuts) {
    const key = `${c.axis}/${c.block}`;
    axes.set(key, [...(axes.get(key) ?? []), c]);
  }
  let out = t;
  for (const same of axes.values()) {
    const { axis, block } = same[0];
    const kept = new Array<boolean>(Number(out.dims![axis]) / block).fill(true);
    for (const c of same) {
      const chosen = new Set(c.keep);
      for (let i = 0; i < c.size; i++) kept[c.offset + i] = chosen.has(i);
    }
    const keep = kept.flatMap((k, i) => (k ? [i] : []));
    if (keep.length < kept.length) out = sliceChannels(out, axis, block, keep);
  }
  return out;
}

/** Importance of each channel of a group. */
function importance(g: ChannelGroup, tensor: (name: string) => TensorProto): Float64Array {
  const score = new Float64Array(g.size);
  if (g.bnScales.length > 0) {
    for (const name of g.bnScales) {
      const gamma = tensorFloats(tensor(name));
      for (let c = 0; c < g.size; c++) score[c] += Math.abs(gamma[c]);
    }
    return score;
  }
  for (const p of g.producers) {
    const t = tensor(p.tensor);
    const dims = t.dims!.map(Number);
    const v = tensorFloats(t);
    const inner = size(dims.slice(p.axis + 1));
    const outer = size(dims.slice(0, p.axis));
    for (let o = 0; o < outer; o++)
      for (let c = 0; c < g.size; c++)
        for (let i = 0; i < inner; i++) {
          const x = v[(o * dims[p.axis] + c) * inner + i];
          score[c] += x * x;
        }
  }
  return score;
}

/** Indices of the `k` largest scores, in ascending channel order (ties: lower index first). */
export function topChannels(score: ArrayLike<number>, k: number): number[] {
  const order = Array.from({ length: score.length }, (_, i) => i).sort(
    (a, b) => score[b] - score[a] || a - b,
  );
  return order.slice(0, k).sort((a, b) => a - b);
}

/** Keeps channels `keep` (each `block` elements long) along `axis` of a float tensor. */
export function sliceChannels(
  t: TensorProto,
  axis: number,
  block: number,
  keep: readonly number[],
): TensorProto {
  if ((t.dataType ?? DataType.FLOAT) !== DataType.FLOAT)
    throw new FleetError('ONNX_INVALID', `cannot narrow non-float tensor ${t.name}`);
  const dims = t.dims!.map(Number);
  const v = tensorFloats(t);
  const inner = size(dims.slice(axis + 1)) * block;
  const outer = size(dims.slice(0, axis));
  const channels = dims[axis] / block;
  const out = new Float32Array(outer * keep.length * inner);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const c of keep) {
      const from = (o * channels + c) * inner;
      out.set(v.subarray(from, from + inner), at);
      at += inner;
    }
  }
  const newDims = [...dims];
  newDims[axis] = keep.length * block;
  return makeTensor(t.name!, DataType.FLOAT, newDims, out);
}

function withGroup(node: NodeProto, group: number): NodeProto {
  return {
    ...node,
    attribute: [...(node.attribute ?? []).filter((a) => a.name !== 'group'), attr.int('group', group)],
  };
}

function countFloats(inits: ReadonlyMap<string, TensorProto>): number {
  let n = 0;
  for (const t of inits.values()) if ((t.dataType ?? 1) === DataType.FLOAT) n += size(t.dims!.map(Number));
  return n;
}

function size(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
