import { topologicalOrder } from './graph.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from './types.js';

/** A deep copy of a model (typed arrays copied too), so passes can edit freely. */
export function cloneModel(model: ModelProto): ModelProto {
  return structuredClone(model);
}

/** Makes every reader of tensor `from` read `to` instead (graph outputs are left alone). */
export function replaceUses(graph: GraphProto, from: string, to: string, except?: NodeProto): void {
  for (const node of graph.node) {
    if (node === except) continue;
    for (let i = 0; i < node.input.length; i++) if (node.input[i] === from) node.input[i] = to;
  }
}

/**
 * Removes a single-input pass-through node (e.g. Identity, Dropout at inference) by wiring
 * its readers to its input. If its output is a graph output, the producer is renamed instead.
 */
export function bypassNode(graph: GraphProto, node: NodeProto): void {
  const input = node.input[0];
  const output = node.output[0];
  graph.node = graph.node.filter((n) => n !== node);
  if ((graph.output ?? []).some((o) => o.name === output)) {
    const producer = graph.node.find((n) => n.output.includes(input));
    const isGraphInput =
      (graph.input ?? []).some((i) => i.name === input) ||
      (graph.initializer ?? []).some((t) => t.name === input);
    if (producer && !isGraphInput && !(graph.output ?? []).some((o) => o.name === input)) {
      producer.output[producer.output.indexOf(input)] = output;
      replaceUses(graph, input, output);
      return;
    }
    graph.node.push({ opType: 'Identity', input: [input], output: [output], name: `${output}_identity` });
    return;
  }
  replaceUses(graph, output, input);
}

/** Drops nodes whose outputs nobody reads and initializers nobody uses. */
export function pruneGraph(graph: GraphProto): void {
  const needed = new Set((graph.output ?? []).map((o) => o.name));
  const kept: NodeProto[] = [];
  for (const node of [...topologicalOrder(graph)].reverse()) {
    if (node.output.some((o) => needed.has(o))) {
      kept.push(node);
      for (const input of node.input) needed.add(input);
    }
  }
  const keptSet = new Set(kept);
  graph.node = graph.node.filter((n) => keptSet.has(n));
  graph.initializer = (graph.initializer ?? []).filter((t) => needed.has(t.name ?? ''));
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => needed.has(v.name));
}

/** Sorts the graph's nodes topologically in place (ONNX requires it, ORT checks it). */
export function sortGraph(graph: GraphProto): void {
  graph.node = topologicalOrder(graph);
}

/** The opset version a model imports for a domain ('' = ai.onnx); 0 if it does not. */
export function opsetVersion(model: ModelProto, domain = ''): number {
  const entry = model.opsetImport?.find(
    (o) => (o.domain ?? '') === domain || (domain === '' && o.domain === 'ai.onnx'),
  );
  return entry?.version ?? 0;
}

/** Sets (or adds) the opset import of a domain. */
export function setOpset(model: ModelProto, domain: string, version: number): void {
  model.opsetImport ??= [];
  const entry = model.opsetImport.find((o) => (o.domain ?? '') === domain);
  if (entry) entry.version = version;
  else model.opsetImport.push({ domain, version });
}
