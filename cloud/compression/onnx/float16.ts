/** IEEE 754 half precision conversions (float16 tensors are stored as raw uint16 bits). */

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** Largest finite float16 value. */
export const FLOAT16_MAX = 65504;

/** float32 -> float16 bits, round to nearest even; values beyond ±65504 become ±Infinity. */
export function toFloat16Bits(value: number): number {
  F32[0] = value;
  const x = U32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  const m = mant >>> 13;
  const rest = mant & 0x1fff;
  let out = sign | (e << 10) | m;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) out++;
  return out;
}

/** float16 bits -> number. */
export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Converts a float32 array to float16 bits, clamping finite values to ±65504 so that a
 * large weight saturates instead of becoming Infinity. Returns the bits and how many
 * values were clamped.
 */
export function float32ToFloat16(values: Float32Array): { bits: Uint16Array; clamped: number } {
  const bits = new Uint16Array(values.length);
  let clamped = 0;
  for (let i = 0; i < values.length; i++) {
    let v = values[i];
    if (v > FLOAT16_MAX) {
      v = FLOAT16_MAX;
      clamped++;
    } else if (v < -FLOAT16_MAX) {
      v = -FLOAT16_MAX;
      clamped++;
    }
    bits[i] = toFloat16Bits(v);
  }
  return { bits, clamped };
}
