import { createRng } from '../../../shared/random.js';
import type { Rgba } from './images.js';
import { loadMnist } from './mnist.js';

/**
 * Synthetic document images for OCR models, built from real handwritten MNIST digits: lines
 * of dark digits on light, slightly noisy paper with a tint. Deterministic from a seed, so
 * benchmarks and tests see the same pixels. Values are normalised as PaddleOCR does.
 */
export interface TextImageOptions {
  /** Image height in pixels; default 640. */
  height: number;
  /** Image width in pixels; default 640. */
  width: number;
  /** Number of images; default 8. */
  count: number;
  /** Seed of the layout; default 1. */
  seed: number;
  /** Per-channel mean and std after scaling to [0, 1] (detector: ImageNet; classifier: 0.5/0.5). */
  mean: [number, number, number];
  std: [number, number, number];
  /** Rotate every other image by 180° (text-direction classifier inputs); default false. */
  flipHalf: boolean;
}

export const DETECTOR_IMAGES: TextImageOptions = {
  height: 640,
  width: 640,
  count: 8,
  seed: 1,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  flipHalf: false,
};

export const CLASSIFIER_IMAGES: TextImageOptions = {
  height: 48,
  width: 192,
  count: 8,
  seed: 1,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
  flipHalf: true,
};

/** Images as one Float32Array [count, 3, height, width]. */
export function textImages(options: Partial<TextImageOptions> = {}): Float32Array {
  const o = { ...DETECTOR_IMAGES, ...options };
  const { height: H, width: W } = o;
  const digits = loadMnist();
  const rng = createRng(o.seed);
  const out = new Float32Array(o.count * 3 * H * W);
  const gray = new Float32Array(H * W);
  for (let n = 0; n < o.count; n++) {
    const paper = 0.85 + 0.12 * rng();
    for (let i = 0; i < H * W; i++) gray[i] = paper + (rng() - 0.5) * 0.04;
    // Lines of text: glyph height between 16 px and most of the image height.
    const glyph = Math.max(12, Math.round(Math.min(H * 0.8, 16 + rng() * Math.min(40, H))));
    let y = Math.round(rng() * Math.max(1, H * 0.1));
    while (y + glyph <= H) {
      let x = Math.round(rng() * W * 0.2);
      const end = W - Math.round(rng() * W * 0.3);
      while (x + glyph <= end) {
        const d = Math.floor(rng() * digits.count);
        const ink = 0.05 + 0.2 * rng();
        for (let gy = 0; gy < glyph; gy++)
          for (let gx = 0; gx < glyph; gx++) {
            const v = digits.x[d * 784 + Math.floor((gy * 28) / glyph) * 28 + Math.floor((gx * 28) / glyph)];
            const at = (y + gy) * W + x + gx;
            gray[at] = gray[at] * (1 - v) + ink * v;
          }
        x += Math.round(glyph * (0.7 + 0.3 * rng()));
      }
      y += Math.round(glyph * (1.4 + rng()));
    }
    const flip = o.flipHalf && n % 2 === 1;
    const tint = [rng() * 0.06, rng() * 0.06, rng() * 0.06];
    for (let c = 0; c < 3; c++) {
      const base = (n * 3 + c) * H * W;
      for (let i = 0; i < H * W; i++) {
        const v = Math.min(1, gray[flip ? H * W - 1 - i : i] + tint[c]);
        out[base + i] = (v - o.mean[c]) / o.std[c];
      }
    }
  }
  return out;
}

/** The same images as 8-bit RGBA pictures (what a folder of PNG files would hold). */
export function textImagesRgba(options: Partial<TextImageOptions> = {}): Rgba[] {
  const o = { ...DETECTOR_IMAGES, ...options };
  const x = textImages(o);
  const plane = o.height * o.width;
  return Array.from({ length: o.count }, (_, n) => {
    const data = new Uint8Array(plane * 4);
    for (let c = 0; c < 3; c++) {
      const base = (n * 3 + c) * plane;
      for (let i = 0; i < plane; i++)
        data[i * 4 + c] = Math.min(255, Math.max(0, Math.round((x[base + i] * o.std[c] + o.mean[c]) * 255)));
    }
    for (let i = 0; i < plane; i++) data[i * 4 + 3] = 255;
    return { width: o.width, height: o.height, data };
  });
}
