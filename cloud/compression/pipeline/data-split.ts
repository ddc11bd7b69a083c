import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { formatNpy } from '../data/npy.js';
import { loadSamples, type SampleSet } from '../quantize/calibrate/data.js';

/** Training/calibration data and a held-out evaluation set, in the forms the stages read. */
export interface CompressionData {
  /** Data spec for distillation (`mnist` or a .npy path) and its labels. */
  trainSpec: string;
  trainLabels?: string;
  /** Samples for calibration (from the training part). */
  train: SampleSet;
  /** Held-out samples every variant is evaluated on. */
  holdout: SampleSet;
}

/** Share of a user's .npy set kept for evaluation (the rest trains and calibrates). */
export const HOLDOUT_FRACTION = 0.2;

function slice(set: SampleSet, start: number, end: number): SampleSet {
  const size = set.sampleShape.reduce((a, b) => a * b, 1);
  return {
    x: set.x.subarray(start * size, end * size),
    count: end - start,
    sampleShape: set.sampleShape,
    labels: set.labels?.subarray(start, end),
  };
}

/**
 * `mnist` uses the fixed 8,000/2,000 split; a .npy set is split in order, the last 20 % held
 * out (shuffle the file beforehand if it is sorted by class). The training part is written
 * to `workDir` so that the distillation stage reads exactly it.
 */
export async function splitCompressionData(
  data: string,
  labels: string | undefined,
  workDir: string,
): Promise<CompressionData> {
  if (data === 'mnist') {
    return {
      trainSpec: 'mnist',
      train: await loadSamples('mnist:train'),
      holdout: await loadSamples('mnist:test'),
    };
  }
  const all = await loadSamples(data, labels);
  const cut = Math.floor(all.count * (1 - HOLDOUT_FRACTION));
  if (cut < 1 || cut >= all.count) {
    throw new FleetError(
      'INPUT_INVALID',
      `${data}: ${all.count} samples are too few to hold some out for evaluation`,
    );
  }
  const train = slice(all, 0, cut);
  const holdout = slice(all, cut, all.count);
  await mkdir(workDir, { recursive: true });
  const trainSpec = join(workDir, 'train-x.npy');
  await writeFile(trainSpec, formatNpy(Float32Array.from(train.x), [train.count, ...train.sampleShape]));
  let trainLabels: string | undefined;
  if (train.labels) {
    trainLabels = join(workDir, 'train-y.npy');
    await writeFile(trainLabels, formatNpy(Int32Array.from(train.labels), [train.count]));
  }
  return { trainSpec, trainLabels, train, holdout };
}
