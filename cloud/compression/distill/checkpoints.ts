import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { saveModel } from '../onnx/io.js';
import type { ModelProto } from '../onnx/types.js';

/** Writes `model` as `<dir>/step-NNNNNN.onnx` (training steps done so far); returns the path. */
export async function writeStepCheckpoint(dir: string, step: number, model: ModelProto): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `step-${String(step).padStart(6, '0')}.onnx`);
  await saveModel(model, path);
  return path;
}

/** Writes `model` as `<dir>/epoch-NNN.onnx`; returns the path. */
export async function writeCheckpoint(dir: string, epoch: number, model: ModelProto): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `epoch-${String(epoch).padStart(3, '0')}.onnx`);
  await saveModel(model, path);
  return path;
}
