import type { AttributeProto, NodeProto } from '../../onnx/types.js';

/**
 * What a gradient rule sees of one forward node and the tools it has to emit the backward
 * nodes. Gradient tensors always have the shape of the forward tensor they belong to, so a
 * rule asks `shape()` of forward tensors only.
 */
export interface GradContext {
  readonly node: NodeProto;
  /** FLOAT or DOUBLE: the element type of the graph being differentiated. */
  readonly dtype: number;
  /** Default-domain opset of the graph (ReduceMean takes axes as an input from 18). */
  readonly opset: number;
  /** Gradient of each output of the node, or undefined where no gradient flows. */
  readonly gradOutputs: readonly (string | undefined)[];
  /** True when input `index` needs a gradient. */
  needs(index: number): boolean;
  /** Static shape of a forward tensor. */
  shape(tensor: string): number[];
  /** Values of a constant tensor (initializer or Constant node), or undefined when not constant. */
  constant(tensor: string): number[] | undefined;
  /** Data type of a constant tensor, or undefined when not constant. */
  constantType(tensor: string): number | undefined;
  /** Emits a node with one output and returns the output name. */
  op(opType: string, inputs: readonly string[], attributes?: AttributeProto[]): string;
  /** Emits a node with `outputs` outputs and returns their names. */
  opN(opType: string, inputs: readonly string[], outputs: number, attributes?: AttributeProto[]): string[];
  /** A constant of the graph's float type. */
  scalar(value: number): string;
  floats(values: readonly number[], dims: readonly number[]): string;
  int64s(values: readonly number[], dims?: readonly number[]): string;
  /** ReduceSum/ReduceMean over `axes`, written the way the graph's opset wants. */
  reduce(opType: 'ReduceSum' | 'ReduceMean', x: string, axes: readonly number[], keepdims: boolean): string;
  /** Sums a gradient of shape `from` down to shape `to` (reverses numpy broadcasting). */
  unbroadcast(grad: string, from: readonly number[], to: readonly number[]): string;
  /** Casts a bool tensor to the graph's float type. */
  toFloat(mask: string): string;
}

/** The gradient rule of one operator. */
export interface GradRule {
  /** Input indices through which a gradient can flow; others (shapes, running stats) never get one. */
  readonly differentiable: readonly number[];
  /** Emits the backward nodes; returns the gradient of each input (undefined where none). */
  backward(ctx: GradContext): (string | undefined)[];
}
