import { readFile, writeFile } from 'node:fs/promises';
import { FleetError } from '../../shared/errors/index.js';
import { decodeModel, encodeModel } from './proto.js';
import type { ModelProto } from './types.js';

/** Reads and decodes an ONNX file; FILE_NOT_FOUND / ONNX_DECODE on failure. */
export async function loadModel(path: string): Promise<ModelProto> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new FleetError('FILE_NOT_FOUND', `cannot read ${path}: ${(error as Error).message}`, { path });
  }
  return decodeModel(bytes);
}

export async function saveModel(model: ModelProto, path: string): Promise<number> {
  const bytes = encodeModel(model);
  await writeFile(path, bytes);
  return bytes.length;
}
