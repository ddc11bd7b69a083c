import { pruneGraph, replaceUses } from '../onnx/edit.js';
import { GraphIndex } from '../onnx/graph.js';
import { elementCount, tensorValues } from '../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../onnx/types.js';

function sameConstant(index: GraphIndex, a: string | undefined, b: string | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  const ta = index.initializers.get(a);
  const tb = index.initializers.get(b);
  if (!ta || !tb || ta.dataType !== tb.dataType) return false;
  const va = tensorValues(ta);
  const vb = tensorValues(tb);
  return va.length === vb.length && va.every((v, i) => v === vb[i]);
}

/** Whether a DQ and a Q use the same scale, zero point and axis (so Q(DQ(x)) == x). */
function sameParams(index: GraphIndex, dq: NodeProto, q: NodeProto): boolean {
  const axis = (n: NodeProto) => n.attribute?.find((a) => a.name === 'axis')?.i ?? 1;
  return (
    sameConstant(index, dq.input[1], q.input[1]) &&
    sameConstant(index, dq.input[2], q.input[2]) &&
    axis(dq) === axis(q)
  );
}

/**
 * Drops Q(DQ(x)) round trips with identical parameters (left when a float op between them
 * was removed): readers of the Q output read x. Returns how many Q nodes were removed.
 */
export function removeRedundantQdq(graph: GraphProto): number {
  const index = new GraphIndex(graph);
  let removed = 0;
  for (const q of graph.node) {
    if (q.opType !== 'QuantizeLinear') continue;
    const dq = index.producer.get(q.input[0]);
    if (dq?.opType !== 'DequantizeLinear' || !sameParams(index, dq, q)) continue;
    if (index.graphOutputs.has(q.output[0])) continue;
    replaceUses(graph, q.output[0], dq.input[0]);
    removed++;
  }
  if (removed > 0) pruneGraph(graph);
  return removed;
}

/**
 * Makes nodes that read equal small constants (scales and zero points: every Transpose or
 * Reshape that shares its input's parameters has its own copy, every per-channel weight its
 * own all-zero zero points) read one initializer, and drops the copies. Returns how many were
 * dropped.
 */
export function shareEqualConstants(graph: GraphProto, maxElements = 1024): number {
  const io = new Set([...(graph.output ?? []), ...(graph.input ?? [])].map((v) => v.name));
  const first = new Map<string, string>();
  const rename = new Map<string, string>();
  for (const t of graph.initializer ?? []) {
    if (!t.name || io.has(t.name) || elementCount(t.dims) > maxElements) continue;
    const key = `${t.dataType}:${(t.dims ?? []).join('x')}:${String(tensorValues(t))}`;
    const kept = first.get(key);
    if (kept) rename.set(t.name, kept);
    else first.set(key, t.name);
  }
  if (rename.size === 0) return 0;
  for (const node of graph.node) node.input = node.input.map((i) => rename.get(i) ?? i);
  graph.initializer = (graph.initializer ?? []).filter((t) => !rename.has(t.name!));
  return rename.size;
}

/**
 * Gives the scalar scales and zero points that only Q/DQ nodes read short names (`qp0`, `qp1`,
 * … in base 36): each is written once and read two to four times, and their derived names
 * (`<tensor>_s`, `<tensor>_z`) were a few percent of a small model's file. Returns how many
 * were renamed.
 */
export function shortenScalarNames(graph: GraphProto): number {
  const index = new GraphIndex(graph);
  const io = new Set([...(graph.input ?? []), ...(graph.output ?? [])].map((v) => v.name));
  const used = new Set<string>([
    ...(graph.initializer ?? []).map((t) => t.name!),
    ...graph.node.flatMap((n) => [...n.input, ...n.output]),
  ]);
  let counter = 0;
  const fresh = () => {
    let name: string;
    do name = `qp${(counter++).toString(36)}`;
    while (used.has(name));
    used.add(name);
    return name;
  };
  const rename = new Map<string, string>();
  for (const t of graph.initializer ?? []) {
    if ((t.dims ?? []).length !== 0 || io.has(t.name!)) continue;
    const readers = index.consumersOf(t.name!);
    const qdqParameter = (n: NodeProto) =>
      (n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear') && n.input[0] !== t.name;
    if (readers.length === 0 || !readers.every(qdqParameter)) continue;
    const short = fresh();
    rename.set(t.name!, short);
    t.name = short;
  }
  for (const node of graph.node) node.input = node.input.map((i) => rename.get(i) ?? i);
  return rename.size;
}
