import { FleetError } from '../../../shared/errors/index.js';
import { encodeModel } from '../onnx/proto.js';
import type { ModelProto } from '../onnx/types.js';
import { createSession, type OrtSession, ort } from '../runtime/ort.js';

export interface ModelRunnerOptions {
  /** onnxruntime intra-op threads; default 0 (all cores). */
  intraOpThreads?: number;
  /** Samples per run when the model's batch axis is free; default 512. */
  chunk?: number;
  /**
   * At most this many input floats per run; default 2^22 (16 MiB). A detector's activations
   * are many times its input: 512 images of 3×256×256 in one run would need tens of GB.
   */
  maxChunkFloats?: number;
  /** Extra tensors to read besides the first output (e.g. a hint feature map). */
  extraOutputs?: string[];
}

const MAX_CHUNK_FLOATS = 2 ** 22;

/**
 * Runs an inference model (the teacher, or the student during evaluation) over many samples,
 * in chunks. A model whose batch axis is fixed runs at that batch size, padding the last chunk.
 */
export class ModelRunner {
  private constructor(
    private readonly session: OrtSession,
    readonly input: string,
    readonly output: string,
    readonly sampleShape: number[],
    private readonly fixedBatch: number | undefined,
    readonly chunk: number,
    readonly extraOutputs: string[],
  ) {
    ModelRunner.open++;
  }

  /** Runners created and not yet released, in this process (each holds a session and its memory). */
  static open = 0;
  private released = false;

  /** Per-sample shapes of the outputs seen in the last run (batch axis removed). */
  lastShapes: number[][] = [];

  static async create(
    model: ModelProto,
    label: string,
    options: ModelRunnerOptions = {},
  ): Promise<ModelRunner> {
    const graph = model.graph;
    const inits = new Set((graph.initializer ?? []).map((t) => t.name));
    const input = (graph.input ?? []).find((i) => !inits.has(i.name));
    const output = graph.output?.[0];
    if (!input || !output)
      throw new FleetError('ONNX_INVALID', `${label} model needs an input and an output`);
    const dims = input.type?.tensorType?.shape?.dim ?? [];
    const sampleShape = dims.slice(1).map((d) => d.dimValue ?? 0);
    if (sampleShape.some((d) => !d)) {
      throw new FleetError('ONNX_SHAPE', `${label} input ${input.name} has symbolic sample dimensions`, {
        input: input.name,
      });
    }
    const extra = options.extraOutputs ?? [];
    let runnable = model;
    if (extra.length > 0) {
      runnable = {
        ...model,
        graph: { ...graph, output: [...(graph.output ?? []), ...extra.map((name) => ({ name }))] },
      };
    }
    let session: OrtSession;
    try {
      session = await createSession(encodeModel(runnable), { intraOpThreads: options.intraOpThreads ?? 0 });
    } catch (error) {
      // onnxruntime's message names the op and node it could not load.
      throw new FleetError(
        'RUNTIME_LOAD',
        `${label}: ${(error as Error).message}`,
        { model: label },
        { cause: error },
      );
    }
    const fixed = dims[0]?.dimValue;
    const sampleFloats = sampleShape.reduce((a, b) => a * b, 1);
    const byMemory = Math.floor((options.maxChunkFloats ?? MAX_CHUNK_FLOATS) / sampleFloats);
    const chunk = Math.max(1, Math.min(options.chunk ?? 512, byMemory));
    return new ModelRunner(session, input.name, output.name, sampleShape, fixed, chunk, extra);
  }

  get sampleSize(): number {
    return this.sampleShape.reduce((a, b) => a * b, 1);
  }

  /** Runs `count` samples; returns the first output and each extra output, flattened per sample. */
  async run(x: Float32Array, count: number): Promise<Float32Array[]> {
    const size = this.sampleSize;
    // Data of another sample size (pages for a model declared on crops) would be cut into
    // wrong samples and scored as garbage without a word.
    if (x.length !== count * size) {
      throw new FleetError(
        'ONNX_SHAPE',
        `${count} samples of ${x.length / count} floats do not fit the model's input ${this.input} [N, ${this.sampleShape.join(', ')}] (${size} floats per sample)`,
        { input: this.input, expected: this.sampleShape },
      );
    }
    const batch = this.fixedBatch ?? Math.min(this.chunk, count);
    const results: Float32Array[] = [];
    const names = [this.output, ...this.extraOutputs];
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      let data = x.subarray(start * size, (start + n) * size);
      const rows = this.fixedBatch ?? n;
      if (rows > n) {
        const padded = new Float32Array(rows * size);
        padded.set(data);
        data = padded;
      }
      const out = await this.session.run({
        [this.input]: new ort.Tensor('float32', data, [rows, ...this.sampleShape]),
      });
      this.lastShapes = names.map((name) => [...out[name].dims].slice(1));
      names.forEach((name, k) => {
        const t = out[name].data as Float32Array;
        const per = t.length / rows;
        if (!results[k]) results[k] = new Float32Array(count * per);
        results[k].set(t.subarray(0, n * per), start * per);
      });
    }
    return results;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    ModelRunner.open--;
    await this.session.release();
  }
}
