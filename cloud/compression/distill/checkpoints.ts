import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { saveModel } from '../onnx/io.js';
import type { ModelProto } from '../onnx/types.js';

/** Writes `model` as `<dir>/epoch-NNN.onnx`; returns the path. */
export async function writeCheckpoint(dir: string, epoch: number, model: ModelProto): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `epoch-${String(epoch).padStart(3, '0')}.onnx`);
  await saveModel(model, path);
  return path;
}
