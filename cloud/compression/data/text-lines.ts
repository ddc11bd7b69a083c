import { createRng } from '../../../shared/random.js';
import { loadMnist } from './mnist.js';

/**
 * Single text lines for OCR recognisers (PaddleOCR's recogniser reads [N, 3, 48, W] crops of
 * one line): a row of real handwritten MNIST digits on light, slightly noisy paper with a tint,
 * deterministic from a seed. Lines for training and for held-out evaluation can draw on
 * disjoint MNIST digits (`digits`), so a held-out line shares no glyph with training.
 * Normalised as PaddleOCR's recogniser expects: (v − 0.5) / 0.5.
 */
export interface TextLineOptions {
  /** Line height in pixels; default 48 (PaddleOCR's recogniser). */
  height: number;
  /** Line width in pixels; default 320 (PP-OCRv4's recogniser input). */
  width: number;
  /** Number of lines; default 8. */
  count: number;
  /** Seed of the layout; default 1. */
  seed: number;
  /** Fewest and most characters per line; default [3, 10]. */
  length: [number, number];
  /** MNIST digits [start, end) the lines draw from (of 10,000); default all. */
  digits: [number, number];
  /** Per-channel mean and std after scaling to [0, 1]; default 0.5 and 0.5. */
  mean: [number, number, number];
  std: [number, number, number];
}

export const RECOGNISER_LINES: TextLineOptions = {
  height: 48,
  width: 320,
  count: 8,
  seed: 1,
  length: [3, 10],
  digits: [0, 10_000],
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
};

/** Lines as one Float32Array [count, 3, height, width]. */
export function textLines(options: Partial<TextLineOptions> = {}): Float32Array {
  const o = { ...RECOGNISER_LINES, ...options };
  const { height: H, width: W } = o;
  const rng = createRng(o.seed);
  const out = new Float32Array(o.count * 3 * H * W);
  const gray = new Float32Array(H * W);
  for (let n = 0; n < o.count; n++) {
    drawLine(gray, H, W, o, rng);
    const tint = [rng() * 0.06, rng() * 0.06, rng() * 0.06];
    for (let c = 0; c < 3; c++) {
      const base = (n * 3 + c) * H * W;
      for (let i = 0; i < H * W; i++) out[base + i] = (Math.min(1, gray[i] + tint[c]) - o.mean[c]) / o.std[c];
    }
  }
  return out;
}

/** One line of digits into `gray` (values in [0, 1], dark ink on light paper). */
function drawLine(gray: Float32Array, H: number, W: number, o: TextLineOptions, rng: () => number): void {
  const mnist = loadMnist();
  const [first, end] = [Math.max(0, o.digits[0]), Math.min(mnist.count, o.digits[1])];
  const paper = 0.85 + 0.12 * rng();
  for (let i = 0; i < H * W; i++) gray[i] = paper + (rng() - 0.5) * 0.04;
  // Glyphs fill 55–85 % of the line height, like a tight crop around printed text.
  const glyph = Math.round(H * (0.55 + 0.3 * rng()));
  const top = Math.round(rng() * (H - glyph));
  const wanted = o.length[0] + Math.floor(rng() * (o.length[1] - o.length[0] + 1));
  const ink = 0.05 + 0.2 * rng();
  let x = 2 + Math.round(rng() * 12);
  for (let k = 0; k < wanted && x + glyph <= W - 2; k++) {
    const d = first + Math.floor(rng() * (end - first));
    // MNIST digits sit in a 20×20 box inside 28×28: a pitch of 0.6–0.9 glyphs looks like text.
    const y = Math.min(H - glyph, Math.max(0, top + Math.round((rng() - 0.5) * 4)));
    for (let gy = 0; gy < glyph; gy++)
      for (let gx = 0; gx < glyph; gx++) {
        const v = mnist.x[d * 784 + Math.floor((gy * 28) / glyph) * 28 + Math.floor((gx * 28) / glyph)];
        const at = (y + gy) * W + x + gx;
        gray[at] = gray[at] * (1 - v) + ink * v;
      }
    x += Math.round(glyph * (0.6 + 0.3 * rng()));
  }
}
