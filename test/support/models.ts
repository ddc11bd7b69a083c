import { readFile } from 'node:fs/promises';
import { decodeModel, encodeModel } from '../../cloud/compression/onnx/proto.js';

export const SAMPLE_MODEL = new URL('../../cloud/samples/mnist-mlp.onnx', import.meta.url);

/** The sample model with `tag` as its doc string: the same network, distinct bytes (and sha256). */
export async function taggedSample(tag: string): Promise<Uint8Array> {
  const model = decodeModel(await readFile(SAMPLE_MODEL));
  model.docString = tag;
  return encodeModel(model);
}
