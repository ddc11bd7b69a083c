import { stat } from 'node:fs/promises';
import { FleetError } from '../../../shared/errors/index.js';
import { loadImageFolder } from '../data/images.js';
import { mnistSplit } from '../data/mnist.js';
import { type NpyArray, readNpy, toFloat32, toLabels } from '../data/npy.js';
import type { TrainData } from './trainer.js';

/** How a folder of images becomes samples; size and channels default to the teacher's input. */
export interface ImageOptions {
  width?: number;
  height?: number;
  mean?: number[];
  std?: number[];
}

/**
 * Loads training (and optional validation) data: `.npy` files, a folder of PNG/JPEG images
 * (resized, scaled to [0, 1], normalised by `images`), or `mnist` (the fixed
 * 8,000/2,000 split; its test part validates unless other validation data is given).
 * Samples are reshaped to `sampleShape` when the element counts agree (e.g. [N, 784] for a
 * [1, 28, 28] teacher).
 */
export async function loadTrainData(
  data: string,
  labels: string | undefined,
  sampleShape: number[] | undefined,
  images: ImageOptions = {},
): Promise<{ train: TrainData; builtinValidation?: TrainData }> {
  if ((await stat(data).catch(() => undefined))?.isDirectory()) {
    return {
      train: withLabels(
        await imageSamples(data, sampleShape, images),
        labels && (await readNpy(labels)),
        data,
      ),
    };
  }
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
  return { train: fitShape(withLabels(train, labels && (await readNpy(labels)), data), sampleShape, data) };
}

function withLabels(train: TrainData, labels: NpyArray | '' | undefined, data: string): TrainData {
  if (!labels) return train;
  const y = toLabels(labels);
  if (y.length !== train.count) {
    throw new FleetError('INPUT_INVALID', `${y.length} labels for ${train.count} samples in ${data}`);
  }
  return { ...train, y };
}

async function imageSamples(
  dir: string,
  sampleShape: number[] | undefined,
  o: ImageOptions,
): Promise<TrainData> {
  const [c, h, w] = sampleShape ?? [3, 0, 0];
  const width = o.width ?? w;
  const height = o.height ?? h;
  if (!width || !height || (c !== 1 && c !== 3)) {
    throw new FleetError(
      'INPUT_INVALID',
      `images need a size (--image-size WxH) and a 1- or 3-channel teacher input, got [${sampleShape ?? 'free'}]`,
    );
  }
  const {
    x,
    count,
    sampleShape: shape,
  } = await loadImageFolder(dir, {
    width,
    height,
    channels: c,
    mean: o.mean,
    std: o.std,
  });
  return { x, count, sampleShape: shape };
}

function fitShape(d: TrainData, sampleShape: number[] | undefined, label: string): TrainData {
  if (!sampleShape) return d;
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
