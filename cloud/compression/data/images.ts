/**
 * A folder of PNG/JPEG images as float samples [count, C, H, W]: decoded by pngjs and jpeg-js
 * (this module is their one adapter), resized bilinearly, scaled and normalised per channel.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { FleetError } from '../../../shared/errors/index.js';

export interface ImagePreprocessing {
  width: number;
  height: number;
  /** 1 (grey: mean of R, G, B) or 3 (RGB). */
  channels: 1 | 3;
  /** Multiplies the 0–255 pixel values first; default 1/255. */
  scale?: number;
  /** Subtracted per channel after scaling; default 0. */
  mean?: number[];
  /** Divides per channel after the mean; default 1. */
  std?: number[];
}

const EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Loads every .png/.jpg/.jpeg file of `dir` (sorted by name) as one sample each. */
export async function loadImageFolder(
  dir: string,
  spec: ImagePreprocessing,
): Promise<{ x: Float32Array; count: number; sampleShape: number[]; files: string[] }> {
  const files = (await readdir(dir)).filter((f) => EXTENSIONS.has(extname(f).toLowerCase())).sort();
  if (files.length === 0) throw new FleetError('INPUT_INVALID', `${dir} holds no .png or .jpg images`);
  const size = spec.channels * spec.height * spec.width;
  const x = new Float32Array(files.length * size);
  for (let i = 0; i < files.length; i++) {
    const rgba = await decodeImage(join(dir, files[i]));
    preprocess(rgba, spec, x.subarray(i * size, (i + 1) * size));
  }
  return { x, count: files.length, sampleShape: [spec.channels, spec.height, spec.width], files };
}

export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

export async function decodeImage(path: string): Promise<Rgba> {
  const bytes = await readFile(path);
  try {
    if (extname(path).toLowerCase() === '.png') {
      const png = PNG.sync.read(bytes);
      return { width: png.width, height: png.height, data: png.data };
    }
    const image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
    return { width: image.width, height: image.height, data: image.data };
  } catch (error) {
    throw new FleetError(
      'INPUT_INVALID',
      `${path}: not a readable image (${(error as Error).message})`,
      undefined,
      {
        cause: error,
      },
    );
  }
}

/** PNG bytes of an RGBA image (test and benchmark data written as a user's folder would be). */
export function encodePng(image: Rgba): Buffer {
  const png = new PNG({ width: image.width, height: image.height });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  return PNG.sync.write(png);
}

/** Bilinear resize (pixel centres aligned), scale, per-channel normalisation, into CHW `out`. */
export function preprocess(image: Rgba, spec: ImagePreprocessing, out: Float32Array): void {
  const { width: W, height: H, channels: C } = spec;
  const scale = spec.scale ?? 1 / 255;
  const sx = image.width / W;
  const sy = image.height / H;
  const at = (px: number, py: number, ch: number) => image.data[(py * image.width + px) * 4 + ch];
  for (let y = 0; y < H; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), image.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, image.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < W; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), image.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, image.width - 1);
      const wx = fx - x0;
      const sample = (ch: number) =>
        (at(x0, y0, ch) * (1 - wx) + at(x1, y0, ch) * wx) * (1 - wy) +
        (at(x0, y1, ch) * (1 - wx) + at(x1, y1, ch) * wx) * wy;
      for (let c = 0; c < C; c++) {
        const raw = C === 1 ? (sample(0) + sample(1) + sample(2)) / 3 : sample(c);
        out[c * H * W + y * W + x] = (raw * scale - (spec.mean?.[c] ?? 0)) / (spec.std?.[c] ?? 1);
      }
    }
  }
}
