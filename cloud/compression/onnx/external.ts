import { open } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import type { GraphProto, ModelProto, TensorProto } from './types.js';

/** TensorProto.DataLocation.EXTERNAL */
const EXTERNAL = 1;
/** Offsets in external files are aligned like onnx's own writer does, for mmap-friendly reads. */
const ALIGNMENT = 4096;

function allTensors(graph: GraphProto, out: TensorProto[] = []): TensorProto[] {
  out.push(...(graph.initializer ?? []));
  for (const node of graph.node) {
    for (const a of node.attribute ?? []) {
      if (a.t) out.push(a.t);
      if (a.tensors) out.push(...a.tensors);
      if (a.g) allTensors(a.g, out);
      for (const g of a.graphs ?? []) allTensors(g, out);
    }
  }
  return out;
}

function entry(tensor: TensorProto, key: string): string | undefined {
  return tensor.externalData?.find((e) => e.key === key)?.value;
}

/**
 * Reads every tensor whose data lives in an external file (relative to `baseDir`) into
 * raw_data and marks it as inline, so that the rest of fleetml sees one self-contained model.
 */
export async function loadExternalData(model: ModelProto, baseDir: string): Promise<void> {
  const external = allTensors(model.graph).filter((t) => t.dataLocation === EXTERNAL);
  const files = new Map<string, Awaited<ReturnType<typeof open>>>();
  try {
    for (const tensor of external) {
      const location = entry(tensor, 'location');
      if (!location || isAbsolute(location) || normalize(location).startsWith('..')) {
        throw new FleetError(
          'ONNX_EXTERNAL_DATA',
          `tensor ${tensor.name}: bad external location '${location}'`,
          {
            tensor: tensor.name,
          },
        );
      }
      const path = join(baseDir, location);
      let file = files.get(path);
      if (!file) {
        try {
          file = await open(path, 'r');
        } catch (error) {
          throw new FleetError(
            'ONNX_EXTERNAL_DATA',
            `tensor ${tensor.name}: cannot open ${path}: ${(error as Error).message}`,
            { tensor: tensor.name, path },
          );
        }
        files.set(path, file);
      }
      const offset = Number(entry(tensor, 'offset') ?? 0);
      const size = (await file.stat()).size;
      const length = Number(entry(tensor, 'length') ?? size - offset);
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new FleetError(
          'ONNX_EXTERNAL_DATA',
          `tensor ${tensor.name}: bytes [${offset}, ${offset + length}) are outside ${path} (${size} bytes)`,
          { tensor: tensor.name, path },
        );
      }
      const bytes = new Uint8Array(length);
      await file.read(bytes, 0, length, offset);
      tensor.rawData = bytes;
      delete tensor.externalData;
      delete tensor.dataLocation;
    }
  } finally {
    for (const file of files.values()) await file.close();
  }
}

/**
 * Moves the raw data of initializers of at least `threshold` bytes into one buffer to be written
 * at `location`; returns a model copy that references it (the input model is not changed).
 */
export function splitExternalData(
  model: ModelProto,
  location: string,
  threshold: number,
): { model: ModelProto; data: Uint8Array } {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const initializer = (model.graph.initializer ?? []).map((tensor) => {
    if (!tensor.rawData || tensor.rawData.length < threshold) return tensor;
    const padding = (ALIGNMENT - (offset % ALIGNMENT)) % ALIGNMENT;
    if (padding) chunks.push(new Uint8Array(padding));
    offset += padding;
    chunks.push(tensor.rawData);
    const moved: TensorProto = {
      ...tensor,
      rawData: undefined,
      dataLocation: EXTERNAL,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(tensor.rawData.length) },
      ],
    };
    delete moved.rawData;
    offset += tensor.rawData.length;
    return moved;
  });
  const data = new Uint8Array(offset);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.length;
  }
  return { model: { ...model, graph: { ...model.graph, initializer } }, data };
}
