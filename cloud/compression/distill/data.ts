import { FleetError } from '../../../shared/errors/index.js';
import { mnistSplit } from '../data/mnist.js';
import { readNpy, toFloat32, toLabels } from '../data/npy.js';
import type { TrainData } from './trainer.js';

/** Built-in datasets a `--data` argument may name instead of a file. */
/**
 * Loads training (and optional validation) data: `.npy` files, or `mnist` (the fixed
 * 8,000/2,000 split; its test part validates unless other validation data is given).
 * Samples are reshaped to `sampleShape` when the element counts agree (e.g. [N, 784] for a
 * [1, 28, 28] teacher).
 */
export async function loadTrainData(
  data: string,
  labels: string | undefined,
  sampleShape: number[],
): Promise<{ train: TrainData; builtinValidation?: TrainData }> {
  if (data === 'mnist') {
    const { train, test } = mnistSplit();
    return {
      train: fitShape(train, sampleShape, data),
      builtinValidation: fitShape(test, sampleShape, data),
    };
  }
  const x = await readNpy(data);
  const count = x.shape[0] ?? 0;
  const train: TrainData = { x: toFloat32(x.data), count, sampleShape: x.shape.slice(1) };
  if (labels) {
    const y = toLabels(await readNpy(labels));
    if (y.length !== count) {
      throw new FleetError(
        'INPUT_INVALID',
        `${labels} has ${y.length} labels for ${count} samples in ${data}`,
      );
    }
    train.y = y;
  }
  return { train: fitShape(train, sampleShape, data) };
}

function fitShape(d: TrainData, sampleShape: number[], label: string): TrainData {
  const want = sampleShape.reduce((a, b) => a * b, 1);
  const have = d.sampleShape.reduce((a, b) => a * b, 1);
  if (want !== have) {
    throw new FleetError(
      'ONNX_SHAPE',
      `${label}: samples of shape [${d.sampleShape}] do not fit the teacher's input [${sampleShape}]`,
    );
  }
  return { ...d, sampleShape };
}
