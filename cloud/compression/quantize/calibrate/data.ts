import { FleetError } from '../../../../shared/errors/index.js';
import { mnistSplit } from '../../data/mnist.js';
import { readNpy, toFloat32, toLabels } from '../../data/npy.js';
import { type OrtTensor, ort } from '../../runtime/ort.js';

/** Samples in memory: x is [count, ...sampleShape] row-major; labels when known. */
export interface SampleSet {
  x: Float32Array;
  count: number;
  sampleShape: number[];
  labels?: Int32Array;
}

/**
 * Reads samples from a `.npy` file (float inputs [N, ...]) or a built-in dataset
 * (`mnist:train`, `mnist:test`), with optional labels from another `.npy` ([N] integers).
 */
export async function loadSamples(source: string, labelsPath?: string): Promise<SampleSet> {
  let set: SampleSet;
  if (source.startsWith('mnist:')) {
    const split = mnistSplit();
    const part = source.slice(6) === 'train' ? split.train : split.test;
    set = { x: part.x, count: part.count, sampleShape: part.sampleShape, labels: part.y };
  } else {
    const array = await readNpy(source);
    if (array.shape.length < 1)
      throw new FleetError('CALIBRATION_DATA', `${source}: expected an array [N, ...]`);
    set = { x: toFloat32(array.data), count: array.shape[0], sampleShape: array.shape.slice(1) };
  }
  if (labelsPath) {
    const labels = toLabels(await readNpy(labelsPath));
    if (labels.length !== set.count) {
      throw new FleetError(
        'CALIBRATION_DATA',
        `${labelsPath} has ${labels.length} labels for ${set.count} samples`,
      );
    }
    set.labels = labels;
  }
  return set;
}

export function sampleSize(set: SampleSet): number {
  return set.sampleShape.reduce((a, b) => a * b, 1);
}

/** The first `n` samples (views, no copy). */
export function headSamples(set: SampleSet, n: number): SampleSet {
  const count = Math.min(n, set.count);
  return {
    x: set.x.subarray(0, count * sampleSize(set)),
    count,
    sampleShape: set.sampleShape,
    labels: set.labels?.subarray(0, count),
  };
}

/** Rows [start, start+n) as an onnxruntime tensor shaped [n, ...sampleShape]. */
export function batchTensor(set: SampleSet, start: number, n: number): OrtTensor {
  const size = sampleSize(set);
  const count = Math.min(n, set.count - start);
  return new ort.Tensor('float32', set.x.slice(start * size, (start + count) * size), [
    count,
    ...set.sampleShape,
  ]);
}
