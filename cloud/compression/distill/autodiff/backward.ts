import { FleetError } from '../../../../shared/errors/index.js';
import { describeNode, topologicalOrder } from '../../onnx/graph.js';
import { DataType, type GraphProto, type NodeProto, type TensorProto } from '../../onnx/types.js';
import { Emitter } from './emitter.js';
import { gradRule } from './registry.js';
import type { GradContext } from './types.js';

export interface BackwardOptions {
  /** Element type of the graph: FLOAT (default) or DOUBLE (gradient checks). */
  dtype?: number;
  /** Default-domain opset of the graph; default 17. */
  opset?: number;
  /**
   * Tensor holding the seed gradient dLoss (shape of the loss). Default: a constant 1.
   * Feeding the learning rate here makes every gradient come out pre-scaled, which saves
   * the optimizer one pass over the parameters.
   */
  seed?: string;
  /** Prefix for generated names; default 'grad'. */
  prefix?: string;
}

export interface BackwardResult {
  /** The backward nodes, in execution order (append them after the forward nodes). */
  nodes: NodeProto[];
  /** Constants the backward nodes use. */
  initializers: TensorProto[];
  /** Gradient tensor of each requested tensor (absent when the loss does not depend on it). */
  gradients: Map<string, string>;
}

/**
 * Reverse-mode differentiation of `loss` with respect to `wrt` over an ONNX graph, emitting
 * standard ONNX ops from the per-op rules in the registry. `shapes` must give the static
 * shape of every forward tensor a rule asks about (see inferShapes).
 */
export function buildBackward(
  graph: GraphProto,
  loss: string,
  wrt: readonly string[],
  shapes: ReadonlyMap<string, number[]>,
  options: BackwardOptions = {},
): BackwardResult {
  const order = topologicalOrder(graph);
  const emitter = new Emitter(graph, options.dtype ?? DataType.FLOAT, options.opset ?? 17, options.prefix);
  const needs = tensorsNeedingGradient(order, loss, new Set(wrt));
  const contributions = new Map<string, string[]>();
  const add = (tensor: string, grad: string) => {
    const list = contributions.get(tensor);
    if (list) list.push(grad);
    else contributions.set(tensor, [grad]);
  };
  const total = (tensor: string): string | undefined => {
    const list = contributions.get(tensor);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) contributions.set(tensor, [emitter.op('Sum', list)]);
    return contributions.get(tensor)![0];
  };
  const shape = (tensor: string): number[] => {
    const s = shapes.get(tensor);
    if (!s) throw new FleetError('INTERNAL', `autodiff: no static shape for tensor ${tensor}`, { tensor });
    return s;
  };

  const lossShape = shape(loss);
  const ones = Array<number>(lossShape.reduce((a, b) => a * b, 1)).fill(1);
  add(loss, options.seed ?? emitter.floats(ones, lossShape));
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    const gradOutputs = node.output.map((o) => (needs.has(o) ? total(o) : undefined));
    if (gradOutputs.every((g) => g === undefined)) continue;
    const rule = gradRule(node.opType, node.domain);
    if (!rule) throw unsupported(node);
    const inputNeeds = node.input.map(
      (name, index) => name !== '' && needs.has(name) && rule.differentiable.includes(index),
    );
    if (!inputNeeds.some(Boolean)) continue;
    const ctx: GradContext = {
      node,
      dtype: emitter.dtype,
      opset: emitter.opset,
      gradOutputs,
      needs: (index) => inputNeeds[index] ?? false,
      shape,
      constant: (t) => emitter.constant(t),
      constantType: (t) => emitter.constantType(t),
      op: (op, inputs, attributes) => emitter.op(op, inputs, attributes),
      opN: (op, inputs, n, attributes) => emitter.opN(op, inputs, n, attributes),
      scalar: (v) => emitter.scalar(v),
      floats: (v, d) => emitter.floats(v, d),
      int64s: (v, d) => emitter.int64s(v, d),
      reduce: (op, x, axes, keep) => emitter.reduce(op, x, axes, keep),
      unbroadcast: (g, from, to) => emitter.unbroadcast(g, from, to),
      toFloat: (m) => emitter.toFloat(m),
    };
    const grads = rule.backward(ctx);
    node.input.forEach((name, index) => {
      const g = grads[index];
      if (g && inputNeeds[index]) add(name, g);
    });
  }
  const gradients = new Map<string, string>();
  for (const name of wrt) {
    const g = total(name);
    if (g) gradients.set(name, g);
  }
  return { nodes: emitter.nodes, initializers: emitter.initializers, gradients };
}

function unsupported(node: NodeProto): FleetError {
  const domain = node.domain ? `${node.domain}.` : '';
  return new FleetError(
    'GRAD_UNSUPPORTED_OP',
    `no gradient rule for ${domain}${node.opType} (node ${describeNode(node)})`,
    { op: node.opType, node: node.name ?? node.output[0] },
  );
}

/**
 * Tensors that depend on a `wrt` tensor and that the loss depends on through differentiable
 * inputs. A shape computed from a feature map (Shape → Gather → Concat → Reshape's shape input,
 * as exporters write dynamic reshapes) reaches the loss only through a slot no gradient flows
 * into, so nothing on that path needs a rule. Ops without a rule count every input, so that
 * assertDifferentiable still names them.
 */
function tensorsNeedingGradient(order: NodeProto[], loss: string, wrt: Set<string>): Set<string> {
  const fromWrt = new Set(wrt);
  for (const node of order) {
    if (node.input.some((i) => fromWrt.has(i))) for (const o of node.output) if (o) fromWrt.add(o);
  }
  const toLoss = new Set([loss]);
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i];
    if (!node.output.some((o) => toLoss.has(o))) continue;
    const slots = gradRule(node.opType, node.domain)?.differentiable;
    node.input.forEach((input, index) => {
      if (input && (!slots || slots.includes(index))) toLoss.add(input);
    });
  }
  return new Set([...fromWrt].filter((t) => toLoss.has(t)));
}

/**
 * Checks ahead of time that every node on a path from `wrt` to `loss` has a gradient rule,
 * so that a user hears about an unsupported op before any data is loaded.
 */
export function assertDifferentiable(graph: GraphProto, loss: string, wrt: readonly string[]): void {
  const order = topologicalOrder(graph);
  const needs = tensorsNeedingGradient(order, loss, new Set(wrt));
  for (const node of order) {
    if (node.input.some((i) => needs.has(i)) && node.output.some((o) => needs.has(o))) {
      if (!gradRule(node.opType, node.domain)) throw unsupported(node);
    }
  }
}
