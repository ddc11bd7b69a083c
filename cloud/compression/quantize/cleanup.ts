import { pruneGraph, replaceUses } from '../onnx/edit.js';
import { GraphIndex } from '../onnx/graph.js';
import { tensorValues } from '../onnx/tensor.js';
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
