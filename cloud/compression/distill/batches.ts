/** Copies sample `index` of `x` into `out` at `offset`, shifted by (dy, dx) pixels with zero fill. */
export function copyShifted(
  x: Float32Array,
  index: number,
  sampleShape: readonly number[],
  out: Float32Array,
  offset: number,
  dy: number,
  dx: number,
): void {
  const size = sampleShape.reduce((a, b) => a * b, 1);
  const src = index * size;
  if ((dy === 0 && dx === 0) || sampleShape.length < 2) {
    out.set(x.subarray(src, src + size), offset);
    return;
  }
  const w = sampleShape[sampleShape.length - 1];
  const h = sampleShape[sampleShape.length - 2];
  const planes = size / (h * w);
  out.fill(0, offset, offset + size);
  for (let p = 0; p < planes; p++) {
    for (let r = 0; r < h; r++) {
      const sr = r - dy;
      if (sr < 0 || sr >= h) continue;
      const c0 = Math.max(0, dx);
      const c1 = Math.min(w, w + dx);
      const from = src + p * h * w + sr * w + (c0 - dx);
      out.set(x.subarray(from, from + (c1 - c0)), offset + p * h * w + r * w + c0);
    }
  }
}

/** Writes one-hot rows for `labels[order[i]]` into `out` starting at row `row`. */
export function oneHot(
  labels: Int32Array,
  indices: ArrayLike<number>,
  classes: number,
  out: Float32Array,
  row: number,
): void {
  for (let i = 0; i < indices.length; i++) {
    const base = (row + i) * classes;
    out.fill(0, base, base + classes);
    out[base + labels[indices[i]]] = 1;
  }
}
