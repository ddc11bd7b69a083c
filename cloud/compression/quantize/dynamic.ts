import { attr, makeNode } from '../onnx/build.js';
import { floatTensor, makeTensor } from '../onnx/tensor.js';
import { DataType, type ModelProto } from '../onnx/types.js';
import { quantizePerChannel } from './params.js';
import { type ReduceRange, resolveReduceRange, weightBits } from './target.js';
import { rewriteWeightMatMuls } from './weight-rewrite.js';

export interface DynamicOptions {
  /** One weight scale per output column (true) or per tensor; default true. */
  perChannel: boolean;
  /** Node names to leave in float; default none. */
  exclude: string[];
  /**
   * 7-bit weights: the uint8 × int8 products of MatMulInteger saturate on x86 without VNNI
   * (see target.ts); default 'host' (decided by the built-in profile this machine matches).
   */
  reduceRange: ReduceRange;
  /** Fuse decomposed LayerNorm and GELU first, as static INT8 does (onnx/fuse-transformer.ts); default true. */
  fuseTransformer: boolean;
}

export const DEFAULT_DYNAMIC_OPTIONS: DynamicOptions = {
  perChannel: true,
  exclude: [],
  reduceRange: 'host',
  fuseTransformer: true,
};

export interface DynamicResult {
  model: ModelProto;
  /** MatMul/Gemm nodes rewritten to integer form. */
  quantizedNodes: number;
}

/**
 * Dynamic INT8: weights become symmetric int8 (per column), activations are quantized to
 * uint8 at run time by DynamicQuantizeLinear, and the product runs as MatMulInteger with the
 * scales applied after. Written with standard ONNX ops; onnxruntime fuses the chain into
 * DynamicQuantizeMatMul / MatMulIntegerToFloat. No calibration data is needed.
 */
export async function quantizeDynamic(
  input: ModelProto,
  options: Partial<DynamicOptions> = {},
): Promise<DynamicResult> {
  const o = { ...DEFAULT_DYNAMIC_OPTIONS, ...options };
  const bits = weightBits(resolveReduceRange(o.reduceRange));
  return rewriteWeightMatMuls(
    input,
    o.exclude,
    (mm, { name: n, addInitializer, product }) => {
      const { values, scales } = quantizePerChannel(
        mm.w,
        o.perChannel ? [mm.k, mm.n] : [1, mm.w.length],
        1,
        bits,
      );
      // Short suffixes and unnamed nodes: 13 weight MatMuls of a d 64 transformer carried ~4 kB
      // of names (1 % of its file) in the longer form.
      const [wq, wz, ws] = [n('wq'), n('wz'), n('ws')];
      addInitializer(
        makeTensor(wq, DataType.INT8, [mm.k, mm.n], values),
        makeTensor(wz, DataType.INT8, o.perChannel ? [mm.n] : [], new Int8Array(o.perChannel ? mm.n : 1)),
        floatTensor(ws, o.perChannel ? [mm.n] : [], scales),
      );
      const [xq, xs, xz, acc, accf, scale] = [n('xq'), n('xs'), n('xz'), n('acc'), n('accf'), n('s')];
      return [
        makeNode('DynamicQuantizeLinear', [mm.node.input[0]], [xq, xs, xz]),
        makeNode('MatMulInteger', [xq, wq, xz, wz], [acc]),
        makeNode('Cast', [acc], [accf], [attr.int('to', DataType.FLOAT)]),
        makeNode('Mul', [xs, ws], [scale]),
        makeNode('Mul', [accf, scale], [product]),
      ];
    },
    { fuseTransformer: o.fuseTransformer },
  );
}
