import { FleetError } from '../../../shared/errors/index.js';
import { encodeModel } from '../onnx/proto.js';
import { createSession, type OrtSession, ort } from '../runtime/ort.js';
import { carriedInput, carriedOutput, RUN_INPUTS, type TrainingGraph } from './training-graph.js';

/**
 * Samples the training model reads rows from: inputs [count, ...sampleShape] and, as the loss
 * needs them, teacher targets, one-hot labels and teacher hint tensors, all row-major.
 */
export interface SampleSet {
  count: number;
  x: Float32Array;
  teacherLogits?: Float32Array;
  labelsOneHot?: Float32Array;
  teacherHint?: Float32Array;
}

/**
 * One run: K steps of B samples. Either `indices` ([K * B] rows of the resident sample set,
 * see `TrainingSession.setSamples`) or the samples themselves, in step order (x etc. hold
 * exactly K * B rows).
 */
export interface RunChunk extends Partial<SampleSet> {
  steps: number;
  indices?: BigInt64Array;
  /** [steps, hyperSize] per-step optimizer numbers (see GraphOptimizer.hyper). */
  hyper: Float32Array;
}

export interface TrainingSessionOptions {
  /** onnxruntime intra-op threads; default 0 (all cores). */
  intraOpThreads?: number;
  /** Profile every kernel into files starting with this path (benchmarks); default off. */
  profileFilePrefix?: string;
  /**
   * Let idle onnxruntime threads spin; default false. Measured on the shared 2-core machine,
   * sleeping threads trained about twice as fast while other jobs ran (scripts/bench/distill.ts).
   */
  allowSpinning?: boolean;
}

/**
 * Holds the training model's session and the carried tensors between runs. Each carried
 * tensor has two buffers that swap roles every run: one is read as the run's input, the other
 * is handed to onnxruntime as the preallocated output. So a run allocates no new JavaScript
 * buffers for parameters and optimizer state (10 MB per run for the 784-800-800-10 student;
 * 1.6-2.2 % faster in paired runs).
 */
export class TrainingSession {
  private state = new Map<string, ort.Tensor>();
  private spare = new Map<string, ort.Tensor>();
  private resident: Record<string, ort.Tensor> | undefined;

  private constructor(
    readonly graph: TrainingGraph,
    private readonly session: OrtSession,
    private readonly sampleShape: number[],
    private readonly batch: number,
    private readonly classes: number,
  ) {
    for (const c of graph.carried) {
      this.state.set(c.name, new ort.Tensor('float32', c.initial.slice(), c.dims));
      // A copy too, not zeros: its pages get written here, where the state's are, and not by
      // onnxruntime inside the first run (fresh pages cost ~33 ms per 10 MB on this VM).
      this.spare.set(c.name, new ort.Tensor('float32', c.initial.slice(), c.dims));
    }
  }

  static async create(graph: TrainingGraph, options: TrainingSessionOptions = {}): Promise<TrainingSession> {
    const session = await createSession(encodeModel(graph.model), {
      intraOpThreads: options.intraOpThreads ?? 0,
      profileFilePrefix: options.profileFilePrefix,
      allowSpinning: options.allowSpinning ?? false,
    });
    return new TrainingSession(graph, session, graph.sampleShape, graph.batch, graph.classes);
  }

  /**
   * Makes `samples` the resident sample set: its tensors are created once and fed to every
   * run that names rows by index (onnxruntime reads JavaScript's buffers in place).
   */
  setSamples(samples: SampleSet): void {
    this.resident = this.sampleFeeds(samples);
  }

  async run(chunk: RunChunk): Promise<{ losses: Float32Array; logits?: Float32Array }> {
    const K = chunk.steps;
    let data = this.resident;
    let indices = chunk.indices;
    if (!indices) {
      if (!chunk.x) throw new FleetError('INTERNAL', 'training run needs indices or samples');
      data = this.sampleFeeds({ ...chunk, x: chunk.x, count: K * this.batch });
      indices = sequentialIndices(K * this.batch);
    }
    if (!data) throw new FleetError('INTERNAL', 'training run names rows but no samples are resident');
    const feeds: Record<string, ort.Tensor> = {
      ...data,
      [RUN_INPUTS.indices]: new ort.Tensor('int64', indices.subarray(0, K * this.batch), [K, this.batch]),
      [RUN_INPUTS.hyper]: new ort.Tensor('float32', chunk.hyper, [K, this.graph.optimizer.hyperSize]),
    };
    const fetches: Record<string, ort.Tensor | null> = { [this.graph.lossesOutput]: null };
    if (this.graph.logitsOutput) fetches[this.graph.logitsOutput] = null;
    for (const [name, tensor] of this.state) {
      feeds[carriedInput(name)] = tensor;
      fetches[carriedOutput(name)] = this.spare.get(name)!;
    }
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds, fetches);
    } catch (error) {
      throw new FleetError('TRAIN_FAILED', `training step failed: ${(error as Error).message}`, undefined, {
        cause: error,
      });
    }
    // The spare buffers now hold the new values; the old ones become the next run's outputs.
    [this.state, this.spare] = [this.spare, this.state];
    const losses = out[this.graph.lossesOutput].data as Float32Array;
    const logits = this.graph.logitsOutput ? (out[this.graph.logitsOutput].data as Float32Array) : undefined;
    return { losses, logits };
  }

  private sampleFeeds(samples: SampleSet): Record<string, ort.Tensor> {
    const n = samples.count;
    const need = (data: Float32Array | undefined, what: string) => {
      if (!data) throw new FleetError('INTERNAL', `training run needs ${what}`);
      return data;
    };
    const feeds: Record<string, ort.Tensor> = {
      [RUN_INPUTS.x]: new ort.Tensor('float32', samples.x.subarray(0, n * size(this.sampleShape)), [
        n,
        ...this.sampleShape,
      ]),
    };
    const uses = this.graph.uses;
    if (uses.teacherLogits) {
      const t = need(samples.teacherLogits, 'teacher targets');
      const shape = this.graph.targetShape;
      feeds[RUN_INPUTS.teacherLogits] = new ort.Tensor('float32', t.subarray(0, n * size(shape)), [
        n,
        ...shape,
      ]);
    }
    if (uses.labels) {
      const y = need(samples.labelsOneHot, 'labels');
      feeds[RUN_INPUTS.labels] = new ort.Tensor('float32', y.subarray(0, n * this.classes), [
        n,
        this.classes,
      ]);
    }
    if (uses.teacherHint) {
      const hint = need(samples.teacherHint, 'teacher hint features');
      feeds[RUN_INPUTS.teacherHint] = new ort.Tensor('float32', hint, [n, ...this.graph.hintShape!]);
    }
    return feeds;
  }

  /** Current values of the parameters and running statistics (views that a later run overwrites; copy to keep). */
  values(roles: readonly ('param' | 'state' | 'buffer')[] = ['param', 'buffer']): Map<string, Float32Array> {
    const result = new Map<string, Float32Array>();
    for (const c of this.graph.carried) {
      if (roles.includes(c.role)) result.set(c.name, this.state.get(c.name)!.data as Float32Array);
    }
    return result;
  }

  /** Replaces carried tensors (restoring a checkpoint or the best epoch's parameters). */
  restore(values: ReadonlyMap<string, Float32Array>): void {
    for (const c of this.graph.carried) {
      const v = values.get(c.name);
      if (v) this.state.set(c.name, new ort.Tensor('float32', v.slice(), c.dims));
    }
  }

  /** Ends profiling (when enabled) and flushes the profile file. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** 0, 1, …, n − 1 as int64 row indices. */
export function sequentialIndices(n: number): BigInt64Array {
  const out = new BigInt64Array(n);
  for (let i = 0; i < n; i++) out[i] = BigInt(i);
  return out;
}

function size(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
