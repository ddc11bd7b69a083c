/**
 * The pure arithmetic of quantization (no graph, no I/O): scales and zero points from ranges,
 * per-channel symmetric weights, int32 biases.
 */
import type { Range } from './calibrate/methods.js';

export type QuantType = 'uint8' | 'int8';

export interface QParams {
  scale: number;
  zeroPoint: number;
  type: QuantType;
}

export const QRANGE: Record<QuantType, { min: number; max: number }> = {
  uint8: { min: 0, max: 255 },
  int8: { min: -128, max: 127 },
};

/** Smallest scale used, so that an all-zero tensor still gets a valid (non-zero) scale. */
const MIN_SCALE = 1e-8;

/**
 * Asymmetric parameters covering `range` widened to include 0 (so that zero padding and ReLU
 * are exact), or with `symmetric` a zero point in the middle of the type and ±max|range|.
 * Kept in float32 precision, as they are stored.
 */
export function activationParams(range: Range, type: QuantType, symmetric = false): QParams {
  const { min: qmin, max: qmax } = QRANGE[type];
  if (symmetric) {
    // Zero point at the middle of the type (0 for int8, what TensorRT requires), ±absMax.
    const absMax = Math.max(Math.abs(range.min), Math.abs(range.max));
    const zeroPoint = type === 'int8' ? 0 : 128;
    return { scale: Math.fround(Math.max(absMax / 127, MIN_SCALE)), zeroPoint, type };
  }
  const lo = Math.min(range.min, 0);
  const hi = Math.max(range.max, 0);
  const scale = Math.fround(Math.max((hi - lo) / (qmax - qmin), MIN_SCALE));
  const zeroPoint = Math.min(qmax, Math.max(qmin, Math.round(qmin - lo / scale)));
  return { scale, zeroPoint, type };
}

/** Symmetric int8 parameters for |x| <= absMax (zero point 0, range ±127). */
export function symmetricScale(absMax: number, bits = 8): number {
  const qmax = 2 ** (bits - 1) - 1;
  return Math.fround(Math.max(absMax / qmax, MIN_SCALE));
}

export function quantizeValue(x: number, p: QParams): number {
  const { min, max } = QRANGE[p.type];
  const q = Math.round(x / p.scale) + p.zeroPoint;
  return q < min ? min : Math.min(q, max);
}

/** Quantizes a whole array per tensor into the typed array of `p.type`. */
export function quantizeArray(values: Float32Array, p: QParams): Int8Array | Uint8Array {
  const out = p.type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = quantizeValue(values[i], p);
  return out;
}

/**
 * Symmetric per-channel int8 weights: `axis` indexes channels of a tensor with dims `dims`.
 * Returns the int8 values and one scale per channel. With `bits` < 8 the values use the
 * narrower symmetric range (e.g. ±7 for 4 bits) but are still returned as Int8Array.
 */
export function quantizePerChannel(
  w: Float32Array,
  dims: readonly number[],
  axis: number,
  bits = 8,
): { values: Int8Array; scales: Float32Array } {
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = w.length / (channels * inner);
  const absMax = new Float32Array(channels);
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < channels; c++) {
      const base = (o * channels + c) * inner;
      let m = absMax[c];
      for (let i = 0; i < inner; i++) m = Math.max(m, Math.abs(w[base + i]));
      absMax[c] = m;
    }
  const scales = Float32Array.from(absMax, (m) => symmetricScale(m, bits));
  const qmax = 2 ** (bits - 1) - 1;
  const values = new Int8Array(w.length);
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < channels; c++) {
      const base = (o * channels + c) * inner;
      for (let i = 0; i < inner; i++) {
        const q = Math.round(w[base + i] / scales[c]);
        values[base + i] = q > qmax ? qmax : Math.max(q, -qmax);
      }
    }
  return { values, scales };
}

/** int32 bias with scale input_scale × weight_scale[c] and zero point 0 (what QLinearConv expects). */
export function quantizeBias(
  bias: Float32Array,
  inputScale: number,
  weightScales: Float32Array,
): { values: Int32Array; scales: Float32Array } {
  const scales = new Float32Array(bias.length);
  const values = new Int32Array(bias.length);
  for (let c = 0; c < bias.length; c++) {
    const s = Math.fround(inputScale * weightScales[weightScales.length === 1 ? 0 : c]);
    scales[c] = s;
    values[c] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(bias[c] / s)));
  }
  return { values, scales };
}
