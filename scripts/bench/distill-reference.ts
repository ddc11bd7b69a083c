/**
 * An independent float64 reference for the correctness benchmark: the template students'
 * forward pass and the distillation loss written out in plain JavaScript, gradients by central
 * finite differences, one SGD step. Shares no code with the ONNX training graph.
 */
export type Params = Map<string, Float64Array>;

export interface LossSetup {
  temperature: number;
  alpha: number;
  teacherLogits: Float64Array;
  labels: Int32Array;
  classes: number;
}

function gemm(
  x: Float64Array,
  rows: number,
  w: Float64Array,
  b: Float64Array,
  inDim: number,
  outDim: number,
): Float64Array {
  const y = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = b[o];
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * w[i * outDim + o];
      y[r * outDim + o] = s;
    }
  }
  return y;
}

const relu = (x: Float64Array) => x.map((v) => Math.max(v, 0));

export function mlpLogits(p: Params, x: Float64Array, rows: number, widths: number[]): Float64Array {
  let h = x;
  for (let l = 0; l < widths.length - 1; l++) {
    h = gemm(h, rows, p.get(`fc${l}.weight`)!, p.get(`fc${l}.bias`)!, widths[l], widths[l + 1]);
    if (l < widths.length - 2) h = relu(h);
  }
  return h;
}

/** conv3x3 (pad 1, no bias) -> BatchNorm (batch statistics) -> ReLU -> MaxPool 2x2, per block, then a linear head. */
export function cnnLogits(
  p: Params,
  x: Float64Array,
  n: number,
  shape: number[],
  channels: number[],
  classes: number,
): Float64Array {
  let [c, h, w] = shape;
  let a = x;
  channels.forEach((co, blk) => {
    const k = p.get(`block${blk}.conv.weight`)!;
    const conv = new Float64Array(n * co * h * w);
    for (let b = 0; b < n; b++)
      for (let o = 0; o < co; o++)
        for (let i = 0; i < h; i++)
          for (let j = 0; j < w; j++) {
            let s = 0;
            for (let ci = 0; ci < c; ci++)
              for (let di = 0; di < 3; di++)
                for (let dj = 0; dj < 3; dj++) {
                  const ii = i + di - 1;
                  const jj = j + dj - 1;
                  if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
                  s += a[((b * c + ci) * h + ii) * w + jj] * k[((o * c + ci) * 3 + di) * 3 + dj];
                }
            conv[((b * co + o) * h + i) * w + j] = s;
          }
    const gamma = p.get(`block${blk}.bn.weight`)!;
    const beta = p.get(`block${blk}.bn.bias`)!;
    const area = h * w;
    for (let o = 0; o < co; o++) {
      let mean = 0;
      for (let b = 0; b < n; b++) for (let q = 0; q < area; q++) mean += conv[(b * co + o) * area + q];
      mean /= n * area;
      let v = 0;
      for (let b = 0; b < n; b++)
        for (let q = 0; q < area; q++) v += (conv[(b * co + o) * area + q] - mean) ** 2;
      v /= n * area;
      const inv = 1 / Math.sqrt(v + 1e-5);
      for (let b = 0; b < n; b++)
        for (let q = 0; q < area; q++) {
          const idx = (b * co + o) * area + q;
          conv[idx] = Math.max(0, gamma[o] * (conv[idx] - mean) * inv + beta[o]);
        }
    }
    const oh = Math.floor(h / 2);
    const ow = Math.floor(w / 2);
    const pooled = new Float64Array(n * co * oh * ow);
    for (let b = 0; b < n; b++)
      for (let o = 0; o < co; o++)
        for (let i = 0; i < oh; i++)
          for (let j = 0; j < ow; j++) {
            let m = Number.NEGATIVE_INFINITY;
            for (let di = 0; di < 2; di++)
              for (let dj = 0; dj < 2; dj++)
                m = Math.max(m, conv[((b * co + o) * h + 2 * i + di) * w + 2 * j + dj]);
            pooled[((b * co + o) * oh + i) * ow + j] = m;
          }
    a = pooled;
    c = co;
    h = oh;
    w = ow;
  });
  return gemm(a, n, p.get('head.weight')!, p.get('head.bias')!, c * h * w, classes);
}

function logSoftmax(z: Float64Array, offset: number, n: number, scale: number): number[] {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) m = Math.max(m, z[offset + i] / scale);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(z[offset + i] / scale - m);
  const lse = m + Math.log(s);
  return Array.from({ length: n }, (_, i) => z[offset + i] / scale - lse);
}

/** alpha T^2 KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) CE(y, z_s), averaged over the batch. */
export function distillLoss(logits: Float64Array, setup: LossSetup): number {
  const { classes: C, temperature: T, alpha } = setup;
  const rows = logits.length / C;
  let kl = 0;
  let ce = 0;
  for (let r = 0; r < rows; r++) {
    const q = logSoftmax(logits, r * C, C, T);
    const p = logSoftmax(setup.teacherLogits, r * C, C, T);
    for (let c = 0; c < C; c++) kl += Math.exp(p[c]) * (p[c] - q[c]);
    ce -= logSoftmax(logits, r * C, C, 1)[setup.labels[r]];
  }
  return (alpha * T * T * kl) / rows + ((1 - alpha) * ce) / rows;
}

/** Loss after one plain SGD step (gradients by float64 central differences). */
export function lossAfterOneStep(
  params: Params,
  lossOf: (p: Params) => number,
  lr: number,
  h = 1e-6,
): { before: number; after: number } {
  const before = lossOf(params);
  const next: Params = new Map();
  for (const [name, values] of params) {
    const updated = new Float64Array(values);
    for (let i = 0; i < values.length; i++) {
      const keep = values[i];
      values[i] = keep + h;
      const up = lossOf(params);
      values[i] = keep - h;
      const down = lossOf(params);
      values[i] = keep;
      updated[i] = keep - (lr * (up - down)) / (2 * h);
    }
    next.set(name, updated);
  }
  return { before, after: lossOf(next) };
}
