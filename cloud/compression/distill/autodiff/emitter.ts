import { attr, makeNode } from '../../onnx/build.js';
import { NameGenerator } from '../../onnx/graph.js';
import { makeTensor, tensorValues } from '../../onnx/tensor.js';
import {
  type AttributeProto,
  DataType,
  type GraphProto,
  type NodeProto,
  type TensorProto,
} from '../../onnx/types.js';

/**
 * Appends nodes and constants to a graph under construction, with names that never clash
 * with the forward graph. Constants become initializers (they also work inside a Loop body).
 */
export class Emitter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly names: NameGenerator;
  private readonly constants = new Map<string, number[]>();
  private readonly tensors = new Map<string, TensorProto>();
  private readonly cache = new Map<string, string>();

  constructor(
    graph: GraphProto,
    readonly dtype: number,
    readonly opset: number,
    private readonly prefix = 'grad',
  ) {
    this.names = new NameGenerator(graph);
    for (const t of graph.initializer ?? []) if (t.name) this.tensors.set(t.name, t);
    for (const n of graph.node) {
      const value = n.opType === 'Constant' ? n.attribute?.find((a) => a.name === 'value')?.t : undefined;
      if (value && n.output[0]) this.tensors.set(n.output[0], value);
    }
  }

  name(base: string): string {
    return this.names.next(`${this.prefix}/${base}`);
  }

  /** Values of a constant tensor, read on first use (most initializers are never asked for). */
  constant(tensor: string): number[] | undefined {
    const known = this.constants.get(tensor);
    if (known) return known;
    const t = this.tensors.get(tensor);
    if (!t) return undefined;
    const values = Array.from(tensorValues(t) as ArrayLike<number | bigint>, (v) => Number(v));
    this.constants.set(tensor, values);
    return values;
  }

  constantType(tensor: string): number | undefined {
    return this.tensors.get(tensor)?.dataType;
  }

  opN(
    opType: string,
    inputs: readonly string[],
    outputs: number,
    attributes: AttributeProto[] = [],
  ): string[] {
    const outs = Array.from({ length: outputs }, () => this.name(opType));
    this.nodes.push(makeNode(opType, inputs, outs, attributes, this.name(`${opType}_node`)));
    return outs;
  }

  op(opType: string, inputs: readonly string[], attributes: AttributeProto[] = []): string {
    return this.opN(opType, inputs, 1, attributes)[0];
  }

  private constTensor(key: string, make: (name: string) => TensorProto, values: number[]): string {
    const hit = this.cache.get(key);
    if (hit) return hit;
    const name = this.name('const');
    const t = make(name);
    this.initializers.push(t);
    this.cache.set(key, name);
    this.constants.set(name, values);
    this.tensors.set(name, t);
    return name;
  }

  floats(values: readonly number[], dims: readonly number[]): string {
    const key = `f${this.dtype}:${dims.join('x')}:${values.join(',')}`;
    return this.constTensor(key, (n) => makeTensor(n, this.dtype, dims, values), [...values]);
  }

  scalar(value: number): string {
    return this.floats([value], []);
  }

  int64s(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i:${dims.join('x')}:${values.join(',')}`;
    return this.constTensor(key, (n) => makeTensor(n, DataType.INT64, dims, values), [...values]);
  }

  reduce(opType: 'ReduceSum' | 'ReduceMean', x: string, axes: readonly number[], keepdims: boolean): string {
    const keep = attr.int('keepdims', keepdims ? 1 : 0);
    const axesAsInput = opType === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    if (axesAsInput) return this.op(opType, [x, this.int64s(axes)], [keep]);
    return this.op(opType, [x], [attr.ints('axes', axes), keep]);
  }

  unbroadcast(grad: string, from: readonly number[], to: readonly number[]): string {
    const lead = from.length - to.length;
    const axes: number[] = [];
    for (let i = 0; i < from.length; i++) {
      if (i < lead || (to[i - lead] === 1 && from[i] !== 1)) axes.push(i);
    }
    if (axes.length === 0 && lead === 0) return grad;
    const summed = axes.length > 0 ? this.reduce('ReduceSum', grad, axes, true) : grad;
    return this.op('Reshape', [summed, this.int64s(to)]);
  }

  toFloat(mask: string): string {
    return this.op('Cast', [mask], [attr.int('to', this.dtype)]);
  }
}
