import { attr, makeNode } from '../onnx/build.js';
import type { NameGenerator } from '../onnx/graph.js';
import { makeTensor } from '../onnx/tensor.js';
import { DataType, type NodeProto, type TensorProto } from '../onnx/types.js';
import type { QParams, QuantType } from './params.js';

export const ONNX_TYPE: Record<QuantType, number> = { uint8: DataType.UINT8, int8: DataType.INT8 };

/**
 * Suffixes of the tensors emitting adds to a quantized tensor's name. Short on purpose: each
 * appears in several node inputs, and in a small model (a d 64 transformer: ~100 Q/DQ pairs)
 * long ones cost several percent of the file.
 */
export const SUFFIX = {
  quantized: '_q',
  dequantized: '_dq',
  scale: '_s',
  zeroPoint: '_z',
  float: '_f',
} as const;

/** Collects what emitting adds to a graph: initializers, nodes, and the nodes it removes. */
export class QdqWriter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly removed = new Set<NodeProto>();

  constructor(private readonly names: NameGenerator) {}

  name(base: string): string {
    return this.names.next(base);
  }

  /** Scalar scale and zero point initializers of `p`. */
  scalarParams(base: string, p: QParams): [string, string] {
    const s = this.name(`${base}${SUFFIX.scale}`);
    const z = this.name(`${base}${SUFFIX.zeroPoint}`);
    this.initializers.push(
      makeTensor(s, DataType.FLOAT, [], [p.scale]),
      makeTensor(z, ONNX_TYPE[p.type], [], [p.zeroPoint]),
    );
    return [s, z];
  }

  dequantize(input: string, s: string, z: string | undefined, out: string, axis?: number): void {
    const attrs = axis === undefined ? [] : [attr.int('axis', axis)];
    // Q/DQ nodes stay unnamed (names are optional): in a small model their names weigh
    // several percent of the file.
    this.nodes.push(makeNode('DequantizeLinear', z ? [input, s, z] : [input, s], [out], attrs));
  }

  /** An integer constant with its (per-axis) scales and a DQ; returns the float tensor's name. */
  dequantizedConstant(
    base: string,
    values: { dims: number[]; data: Int8Array | Int32Array | Uint8Array; type: number },
    scales: Float32Array,
    axis: number | undefined,
  ): string {
    const qi = this.name(`${base}${SUFFIX.quantized}`);
    const s = this.name(`${base}${SUFFIX.scale}`);
    const scaleDims = axis === undefined ? [] : [scales.length];
    this.initializers.push(
      makeTensor(qi, values.type, values.dims, values.data),
      makeTensor(s, DataType.FLOAT, scaleDims, axis === undefined ? [scales[0]] : scales),
    );
    const out = this.name(`${base}${SUFFIX.dequantized}`);
    let z: string | undefined;
    if (values.type !== DataType.INT32) {
      z = this.name(`${base}${SUFFIX.zeroPoint}`);
      this.initializers.push(
        makeTensor(z, values.type, scaleDims, new Array(axis === undefined ? 1 : scales.length).fill(0)),
      );
    }
    this.dequantize(qi, s, z, out, axis);
    return out;
  }
}
