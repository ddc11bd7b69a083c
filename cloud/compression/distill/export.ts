import { makeTensor } from '../onnx/tensor.js';
import { DataType, type ModelProto } from '../onnx/types.js';

/**
 * The trained student as a clean inference model: the original inference graph (BatchNorm in
 * inference form) with trained values in its initializers, Dropout nodes removed, and
 * initializers nothing reads any more dropped.
 */
export function exportStudent(model: ModelProto, values: ReadonlyMap<string, Float32Array>): ModelProto {
  const out = structuredClone(model);
  const graph = out.graph;
  const rename = new Map<string, string>();
  const resolve = (name: string) => rename.get(name) ?? name;
  const kept = [];
  for (const node of graph.node) {
    node.input = node.input.map(resolve);
    if (node.opType === 'Dropout') {
      rename.set(node.output[0], node.input[0]);
      continue;
    }
    kept.push(node);
  }
  graph.node = kept;
  for (const o of graph.output ?? []) {
    const source = rename.get(o.name);
    if (source) {
      graph.node.push({ opType: 'Identity', input: [source], output: [o.name], name: `${o.name}/identity` });
    }
  }
  const used = new Set(graph.node.flatMap((n) => n.input));
  graph.initializer = (graph.initializer ?? [])
    .filter((t) => used.has(t.name!))
    .map((t) => {
      const v = values.get(t.name!);
      return v ? makeTensor(t.name!, DataType.FLOAT, t.dims ?? [], v) : t;
    });
  graph.input = (graph.input ?? []).filter(
    (i) => used.has(i.name) || !graph.initializer!.some((t) => t.name === i.name),
  );
  out.producerName = 'fleetml-distill';
  return out;
}

/** Number of parameters (float initializer elements) of an inference model. */
export function countParameters(model: ModelProto): number {
  return (model.graph.initializer ?? [])
    .filter((t) => t.dataType === DataType.FLOAT)
    .reduce((n, t) => n + (t.dims ?? []).reduce((a, b) => a * b, 1), 0);
}
