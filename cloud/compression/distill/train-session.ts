import { FleetError } from '../../../shared/errors/index.js';
import { encodeModel } from '../onnx/proto.js';
import { createSession, type OrtSession, ort } from '../runtime/ort.js';
import { carriedInput, carriedOutput, RUN_INPUTS, type TrainingGraph } from './training-graph.js';

/** The per-run data: K steps of B samples each, flattened row-major. */
export interface RunChunk {
  steps: number;
  x: Float32Array;
  teacherLogits?: Float32Array;
  labelsOneHot?: Float32Array;
  teacherHint?: Float32Array;
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
 * Holds the training model's session and the carried tensors between runs. Outputs of one
 * run are fed back as the next run's inputs as they are (no copy on the JavaScript side).
 */
export class TrainingSession {
  private state = new Map<string, ort.Tensor>();

  private constructor(
    readonly graph: TrainingGraph,
    private readonly session: OrtSession,
    private readonly sampleShape: number[],
    private readonly batch: number,
    private readonly classes: number,
  ) {
    for (const c of graph.carried)
      this.state.set(c.name, new ort.Tensor('float32', c.initial.slice(), c.dims));
  }

  static async create(graph: TrainingGraph, options: TrainingSessionOptions = {}): Promise<TrainingSession> {
    const session = await createSession(encodeModel(graph.model), {
      intraOpThreads: options.intraOpThreads ?? 0,
      profileFilePrefix: options.profileFilePrefix,
      allowSpinning: options.allowSpinning ?? false,
    });
    return new TrainingSession(graph, session, graph.sampleShape, graph.batch, graph.classes);
  }

  async run(chunk: RunChunk): Promise<{ losses: Float32Array; logits?: Float32Array }> {
    const K = chunk.steps;
    const B = this.batch;
    const feeds: Record<string, ort.Tensor> = {
      [RUN_INPUTS.x]: new ort.Tensor('float32', chunk.x, [K, B, ...this.sampleShape]),
      [RUN_INPUTS.hyper]: new ort.Tensor('float32', chunk.hyper, [K, this.graph.optimizer.hyperSize]),
    };
    const need = (data: Float32Array | undefined, what: string) => {
      if (!data) throw new FleetError('INTERNAL', `training run needs ${what}`);
      return data;
    };
    if (this.graph.uses.teacherLogits) {
      feeds[RUN_INPUTS.teacherLogits] = new ort.Tensor(
        'float32',
        need(chunk.teacherLogits, 'teacher logits'),
        [K, B, this.classes],
      );
    }
    if (this.graph.uses.labels) {
      feeds[RUN_INPUTS.labels] = new ort.Tensor('float32', need(chunk.labelsOneHot, 'labels'), [
        K,
        B,
        this.classes,
      ]);
    }
    if (this.graph.uses.teacherHint) {
      const hint = need(chunk.teacherHint, 'teacher hint features');
      feeds[RUN_INPUTS.teacherHint] = new ort.Tensor('float32', hint, [K, B, hint.length / (K * B)]);
    }
    for (const [name, tensor] of this.state) feeds[carriedInput(name)] = tensor;
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds);
    } catch (error) {
      throw new FleetError('TRAIN_FAILED', `training step failed: ${(error as Error).message}`, undefined, {
        cause: error,
      });
    }
    for (const name of this.state.keys()) this.state.set(name, out[carriedOutput(name)]);
    const losses = out[this.graph.lossesOutput].data as Float32Array;
    const logits = this.graph.logitsOutput ? (out[this.graph.logitsOutput].data as Float32Array) : undefined;
    return { losses, logits };
  }

  /** Current values of the parameters and running statistics (views; copy to keep). */
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
