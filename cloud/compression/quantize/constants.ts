/**
 * Float constants that stay float after static INT8 (LayerNorm scale and bias, biases of float
 * Adds, embedding and positional tables): stored as uint8 with a per-tensor asymmetric scale and
 * a DequantizeLinear, so the file shrinks by their 3/4 too. In a d 64 transformer they and the
 * graph are what kept the file above 0.3× of FP32. A table read by Gather is gathered in uint8
 * and dequantized after (exact, per-tensor parameters), so no whole table is dequantized per run.
 */
import { makeNode } from '../onnx/build.js';
import { GraphIndex, NameGenerator } from '../onnx/graph.js';
import { elementCount, makeTensor, tensorFloats } from '../onnx/tensor.js';
import { DataType, type GraphProto, type NodeProto } from '../onnx/types.js';
import { SUFFIX } from './emit.js';
import { activationParams, quantizeArray } from './params.js';

/** Constants with fewer elements stay float (scalars, shapes: nothing to gain). */
export const MIN_CONSTANT_ELEMENTS = 64;

const QDQ_OPS = new Set(['QuantizeLinear', 'DequantizeLinear']);

/** Readers whose constant inputs are layer weights: left float there on purpose (kept float for accuracy or speed). */
const WEIGHT_OPS = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);

/**
 * Whether every reader takes the constant as a float value operand (not as Q/DQ parameters or
 * a layer's weights), and none is a node the caller keeps float on purpose.
 */
function floatOperand(readers: NodeProto[], keepFloat: ReadonlySet<NodeProto>): boolean {
  return (
    readers.length > 0 &&
    readers.every(
      (n) =>
        !QDQ_OPS.has(n.opType) && !WEIGHT_OPS.has(n.opType) && (n.domain ?? '') === '' && !keepFloat.has(n),
    )
  );
}

/**
 * Rewrites every float initializer of at least `minElements` elements that float nodes read
 * into uint8 + DequantizeLinear (Gather: gathered in uint8, then dequantized). Graph inputs and
 * outputs, layer weights, and constants of `keepFloat` nodes (excluded by the user, a budget
 * or the latency tuner) are left alone. Returns the names of the constants rewritten.
 */
export function quantizeFloatConstants(
  graph: GraphProto,
  keepFloat: ReadonlySet<NodeProto> = new Set(),
  minElements = MIN_CONSTANT_ELEMENTS,
): string[] {
  const index = new GraphIndex(graph);
  const names = new NameGenerator(graph);
  const io = new Set([...(graph.input ?? []), ...(graph.output ?? [])].map((v) => v.name));
  const done: string[] = [];
  const added: NodeProto[] = [];
  for (const t of [...(graph.initializer ?? [])]) {
    const name = t.name!;
    if (t.dataType !== DataType.FLOAT || io.has(name) || elementCount(t.dims) < minElements) continue;
    const readers = index.consumersOf(name);
    if (!floatOperand(readers, keepFloat)) continue;
    const values = tensorFloats(t);
    let min = 0;
    let max = 0;
    for (const v of values) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    // Asymmetric over the tensor's own range (LayerNorm scales sit around 1, far from 0).
    const p = activationParams({ min, max }, 'uint8');
    const [q, s, z] = [
      `${name}${SUFFIX.quantized}`,
      `${name}${SUFFIX.scale}`,
      `${name}${SUFFIX.zeroPoint}`,
    ].map((n) => names.next(n));
    graph.initializer!.push(
      makeTensor(q, DataType.UINT8, t.dims ?? [], quantizeArray(values, p)),
      makeTensor(s, DataType.FLOAT, [], [p.scale]),
      makeTensor(z, DataType.UINT8, [], [p.zeroPoint]),
    );
    let dq: string | undefined;
    for (const reader of readers) {
      if (reader.opType === 'Gather' && reader.input[0] === name) {
        // Gather the uint8 rows, dequantize what was gathered.
        const gathered = names.next(`${reader.output[0]}${SUFFIX.quantized}`);
        added.push(makeNode('DequantizeLinear', [gathered, s, z], [reader.output[0]]));
        reader.input[0] = q;
        reader.output[0] = gathered;
        continue;
      }
      if (!dq) {
        dq = names.next(`${name}${SUFFIX.dequantized}`);
        added.push(makeNode('DequantizeLinear', [q, s, z], [dq]));
      }
      const out = dq;
      reader.input = reader.input.map((i) => (i === name ? out : i));
    }
    graph.initializer = graph.initializer!.filter((x) => x !== t);
    done.push(name);
  }
  graph.node.push(...added);
  return done;
}
