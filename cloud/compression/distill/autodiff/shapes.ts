import { FleetError } from '../../../../shared/errors/index.js';
import { encodeModel } from '../../onnx/proto.js';
import { elementCount } from '../../onnx/tensor.js';
import type { ModelProto } from '../../onnx/types.js';
import { createSession, type OrtTensor, ort } from '../../runtime/ort.js';

/**
 * Static shapes of every tensor of a graph, found by running it once through onnxruntime
 * with every intermediate tensor exposed as an output. Exact for any op onnxruntime runs,
 * at the price of one forward pass; `feeds` fix the batch size.
 */
export async function inferShapes(
  model: ModelProto,
  feeds: Record<string, OrtTensor>,
): Promise<Map<string, number[]>> {
  const shapes = new Map<string, number[]>();
  for (const t of model.graph.initializer ?? []) if (t.name) shapes.set(t.name, [...(t.dims ?? [])]);
  for (const [name, tensor] of Object.entries(feeds)) shapes.set(name, [...tensor.dims]);
  const outputs = [...new Set(model.graph.node.flatMap((n) => n.output).filter((o) => o !== ''))];
  const probe: ModelProto = {
    ...model,
    graph: { ...model.graph, output: outputs.map((name) => ({ name })), valueInfo: [] },
  };
  const session = await createSession(encodeModel(probe), { graphOptimizationLevel: 'disabled' });
  try {
    const results = await session.run(feeds);
    for (const name of outputs) {
      const r = results[name];
      if (r) shapes.set(name, [...r.dims]);
    }
  } catch (error) {
    throw new FleetError('RUNTIME_RUN', `shape probe failed: ${(error as Error).message}`, undefined, {
      cause: error,
    });
  } finally {
    await session.release();
  }
  return shapes;
}

/** Zero-filled feeds for the graph inputs, with `batch` for any symbolic dimension. */
export function zeroFeeds(model: ModelProto, batch: number): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {};
  const initializers = new Set((model.graph.initializer ?? []).map((t) => t.name));
  for (const input of model.graph.input ?? []) {
    if (initializers.has(input.name)) continue;
    const dims = (input.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimValue ?? batch);
    const elem = input.type?.tensorType?.elemType ?? 1;
    const n = elementCount(dims);
    feeds[input.name] =
      elem === 7
        ? new ort.Tensor('int64', new BigInt64Array(n), dims)
        : elem === 11
          ? new ort.Tensor('float64', new Float64Array(n), dims)
          : elem === 9
            ? new ort.Tensor('bool', new Uint8Array(n), dims)
            : new ort.Tensor('float32', new Float32Array(n), dims);
  }
  return feeds;
}
