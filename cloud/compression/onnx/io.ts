import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { loadExternalData, splitExternalData } from './external.js';
import { decodeModel, encodeModel } from './proto.js';
import type { ModelProto } from './types.js';

export interface LoadModelOptions {
  /** Read tensors stored in external files into raw_data; default true. */
  externalData?: boolean;
}

/** Reads and decodes an ONNX file; FILE_NOT_FOUND / ONNX_DECODE / ONNX_EXTERNAL_DATA on failure. */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<ModelProto> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new FleetError('FILE_NOT_FOUND', `cannot read ${path}: ${(error as Error).message}`, { path });
  }
  const model = decodeModel(bytes);
  if (options.externalData ?? true) await loadExternalData(model, dirname(path));
  return model;
}

export interface SaveModelOptions {
  /**
   * Tensors of at least this many bytes go to an external data file beside the model;
   * default Infinity (everything inline). Protobuf cannot encode messages over 2 GB.
   */
  externalDataThreshold?: number;
  /** Name of the external data file, relative to the model; default `<model file>.data`. */
  externalDataLocation?: string;
}

/** Encodes and writes a model; returns the size of the .onnx file in bytes. */
export async function saveModel(
  model: ModelProto,
  path: string,
  options: SaveModelOptions = {},
): Promise<number> {
  const threshold = options.externalDataThreshold ?? Number.POSITIVE_INFINITY;
  if (Number.isFinite(threshold)) {
    const location = options.externalDataLocation ?? `${basename(path)}.data`;
    const { model: inline, data } = splitExternalData(model, location, threshold);
    await writeFile(`${dirname(path)}/${location}`, data);
    model = inline;
  }
  const bytes = encodeModel(model);
  await writeFile(path, bytes);
  return bytes.length;
}
