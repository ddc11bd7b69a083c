import { FleetError } from '../../../shared/errors/index.js';
import { attr, makeNode } from '../onnx/build.js';
import { setOpset } from '../onnx/edit.js';
import { floatTensor, makeTensor } from '../onnx/tensor.js';
import { DataType, type ModelProto } from '../onnx/types.js';
import { rewriteWeightMatMuls } from './weight-rewrite.js';

export interface Int4Options {
  /** Weights per quantization block along K (a power of two >= 16); default 32. */
  blockSize: number;
  /**
   * Symmetric blocks (implicit zero point 8) instead of min/max with a stored zero point;
   * default true: on onnxruntime 1.30's x86 kernels stored zero points made MatMulNBits
   * about 4× slower for no measurable accuracy gain on the MNIST MLP.
   */
  symmetric: boolean;
  /**
   * MatMulNBits accuracy_level: 0 = unset (float compute), 4 = int8 compute of the
   * activations (faster with VNNI, slightly less exact); default 0.
   */
  accuracyLevel: 0 | 1 | 2 | 3 | 4;
  /** Node names to leave in float; default none. */
  exclude: string[];
}

export const DEFAULT_INT4_OPTIONS: Int4Options = {
  blockSize: 32,
  symmetric: true,
  accuracyLevel: 0,
  exclude: [],
};

export interface Int4Result {
  model: ModelProto;
  quantizedNodes: number;
}

/**
 * Packed 4-bit blocks in MatMulNBits layout: for column n and block b, `blockSize` values of
 * W[:, n] (K padded with zeros) as unsigned nibbles, two per byte, low nibble first; one
 * float scale per block, and (asymmetric) one 4-bit zero point per block, packed per column.
 */
export function packInt4Blocks(
  w: Float32Array,
  k: number,
  n: number,
  blockSize: number,
  symmetric: boolean,
): { packed: Uint8Array; scales: Float32Array; zeroPoints?: Uint8Array; blocks: number } {
  const blocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const packed = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  const zpBytes = Math.ceil(blocks / 2);
  const zeroPoints = symmetric ? undefined : new Uint8Array(n * zpBytes);
  const block = new Float32Array(blockSize);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < blocks; b++) {
      let lo = 0;
      let hi = 0;
      let absMax = 0;
      for (let i = 0; i < blockSize; i++) {
        const r = b * blockSize + i;
        const v = r < k ? w[r * n + col] : 0;
        block[i] = v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        if (Math.abs(v) > absMax) absMax = Math.abs(v);
      }
      let scale: number;
      let zp: number;
      if (symmetric) {
        scale = absMax / 7;
        zp = 8;
      } else {
        scale = (hi - lo) / 15;
        zp = scale > 0 ? Math.min(15, Math.max(0, Math.round(-lo / scale))) : 8;
      }
      scale = Math.fround(scale > 0 ? scale : 1);
      scales[col * blocks + b] = scale;
      if (zeroPoints) zeroPoints[col * zpBytes + (b >> 1)] |= zp << ((b & 1) * 4);
      const base = (col * blocks + b) * blob;
      for (let i = 0; i < blockSize; i++) {
        const q = Math.min(15, Math.max(0, Math.round(block[i] / scale) + zp));
        packed[base + (i >> 1)] |= q << ((i & 1) * 4);
      }
    }
  }
  return { packed, scales, zeroPoints, blocks };
}

/**
 * INT4 weight-only quantization: every MatMul/Gemm with constant weights becomes
 * com.microsoft MatMulNBits (4-bit block-wise weights, float activations), the format
 * onnxruntime's CPU provider runs with dedicated kernels. Other ops are untouched.
 */
export async function quantizeInt4(
  input: ModelProto,
  options: Partial<Int4Options> = {},
): Promise<Int4Result> {
  const o = { ...DEFAULT_INT4_OPTIONS, ...options };
  if (!Number.isInteger(Math.log2(o.blockSize)) || o.blockSize < 16) {
    throw new FleetError('INPUT_INVALID', `INT4 block size must be a power of two >= 16, got ${o.blockSize}`);
  }
  const result = await rewriteWeightMatMuls(input, o.exclude, (mm, { name: n, addInitializer, product }) => {
    const { packed, scales, zeroPoints, blocks } = packInt4Blocks(mm.w, mm.k, mm.n, o.blockSize, o.symmetric);
    const [b, s] = [n('int4'), n('scales')];
    addInitializer(
      makeTensor(b, DataType.UINT8, [mm.n, blocks, o.blockSize / 2], packed),
      floatTensor(s, [mm.n * blocks], scales),
    );
    const inputs = [mm.node.input[0], b, s];
    if (zeroPoints) {
      const z = n('zero_points');
      addInitializer(makeTensor(z, DataType.UINT8, [zeroPoints.length], zeroPoints));
      inputs.push(z);
    }
    const attributes = [
      attr.int('K', mm.k),
      attr.int('N', mm.n),
      attr.int('bits', 4),
      attr.int('block_size', o.blockSize),
    ];
    if (o.accuracyLevel) attributes.push(attr.int('accuracy_level', o.accuracyLevel));
    return [makeNode('MatMulNBits', inputs, [product], attributes, n('MatMulNBits'), 'com.microsoft')];
  });
  if (result.quantizedNodes > 0) setOpset(result.model, 'com.microsoft', 1);
  return result;
}
