import { FleetError } from '../../../shared/errors/index.js';
import type { AttributeProto, GraphProto, NodeProto, TensorProto } from './types.js';

/** Reads one attribute of a node by name. */
export function getAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = getAttribute(node, name);
  return a?.i ?? fallback;
}

export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  const a = getAttribute(node, name);
  return a?.f ?? fallback;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = getAttribute(node, name);
  return a?.ints && a.ints.length > 0 ? a.ints : undefined;
}

export function attrString(node: NodeProto, name: string): string | undefined {
  const a = getAttribute(node, name);
  return a?.s ? new TextDecoder().decode(a.s) : undefined;
}

/** A name for diagnostics: the node's name, or its op and first output. */
export function describeNode(node: NodeProto): string {
  return node.name ? `${node.name} (${node.opType})` : `${node.opType} -> ${node.output[0] ?? '?'}`;
}

/**
 * Indexes over a graph: which node produces a tensor, which nodes consume it, and the
 * initializers by name. Build it again after editing the graph.
 */
export class GraphIndex {
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly initializers = new Map<string, TensorProto>();
  readonly graphInputs = new Set<string>();
  readonly graphOutputs = new Set<string>();

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer ?? []) if (t.name) this.initializers.set(t.name, t);
    for (const v of graph.input ?? []) this.graphInputs.add(v.name);
    for (const v of graph.output ?? []) this.graphOutputs.add(v.name);
    for (const node of graph.node) {
      for (const out of node.output) if (out) this.producer.set(out, node);
      for (const input of node.input) {
        if (!input) continue;
        const list = this.consumers.get(input);
        if (list) list.push(node);
        else this.consumers.set(input, [node]);
      }
    }
  }

  consumersOf(tensor: string): NodeProto[] {
    return this.consumers.get(tensor) ?? [];
  }

  isInitializer(tensor: string): boolean {
    return this.initializers.has(tensor);
  }
}

/**
 * Nodes in topological order (Kahn's algorithm, stable with respect to the original order).
 * Throws ONNX_INVALID naming a node whose inputs are never produced, or on a cycle.
 */
export function topologicalOrder(graph: GraphProto): NodeProto[] {
  const available = new Set<string>(['']);
  for (const t of graph.initializer ?? []) if (t.name) available.add(t.name);
  for (const v of graph.input ?? []) available.add(v.name);
  const produced = new Set(graph.node.flatMap((n) => n.output));
  for (const node of graph.node) {
    for (const input of node.input) {
      if (!available.has(input) && !produced.has(input)) {
        throw new FleetError('ONNX_INVALID', `${describeNode(node)} reads ${input}, which nothing produces`, {
          node: node.name,
          op: node.opType,
          tensor: input,
        });
      }
    }
  }
  const pending = [...graph.node];
  const order: NodeProto[] = [];
  while (pending.length > 0) {
    const before = pending.length;
    for (let i = 0; i < pending.length; ) {
      const node = pending[i];
      if (node.input.every((input) => available.has(input))) {
        order.push(node);
        for (const out of node.output) available.add(out);
        pending.splice(i, 1);
      } else {
        i++;
      }
    }
    if (pending.length === before) {
      throw new FleetError('ONNX_INVALID', `graph has a cycle through ${describeNode(pending[0])}`);
    }
  }
  return order;
}

/** Makes names that do not clash with any tensor or node already in the graph. */
export class NameGenerator {
  private readonly used = new Set<string>();

  constructor(graph: GraphProto) {
    for (const t of graph.initializer ?? []) if (t.name) this.used.add(t.name);
    for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])])
      this.used.add(v.name);
    for (const n of graph.node) {
      if (n.name) this.used.add(n.name);
      for (const t of [...n.input, ...n.output]) this.used.add(t);
    }
  }

  next(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}
