/**
 * The cloud side's one door to onnxruntime-node. Everything in cloud/ that runs a model goes
 * through here, so that session options stay consistent (same threads and optimisation level
 * for a model and its reference) and tests can see one place to change.
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { FleetError } from '../../../shared/errors/index.js';

export { ort };
export type OrtTensor = ort.Tensor;
export type OrtSession = ort.InferenceSession;

export interface CloudSessionOptions {
  /**
   * Threads for one operator; default 0 = every core. (onnxruntime's own choice for 0 took fewer
   * threads than cores on a 2-core VM: `fleetml distill` trained at ×0.84 of what 2 threads give.)
   */
  intraOpThreads?: number;
  /** Graph optimisation level; default 'all' (what a device runs). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Where onnxruntime writes the optimised graph (to inspect fusions); default none. */
  optimizedModelFilePath?: string;
  /** onnxruntime log severity: 0 verbose … 4 fatal; default 3 (errors only). */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** Write onnxruntime's per-kernel profile (JSON) to files starting with this path; default off. */
  profileFilePrefix?: string;
  /**
   * Let idle intra-op threads spin instead of sleeping; default true (onnxruntime's default).
   * On a machine shared with other jobs spinning threads steal the cores the others need.
   */
  allowSpinning?: boolean;
}

export const DEFAULT_CLOUD_SESSION_OPTIONS: Required<
  Omit<CloudSessionOptions, 'optimizedModelFilePath' | 'profileFilePrefix'>
> = {
  allowSpinning: true,
  intraOpThreads: 0,
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
};

/** The intra-op thread count a session gets: the setting, or every core when it is 0. */
export function intraOpThreadsFor(setting: number): number {
  return setting > 0 ? setting : availableParallelism();
}

/** Creates a CPU session from model bytes; RUNTIME_LOAD with onnxruntime's reason on failure. */
export async function createSession(
  bytes: Uint8Array,
  options: CloudSessionOptions = {},
): Promise<ort.InferenceSession> {
  const o = { ...DEFAULT_CLOUD_SESSION_OPTIONS, ...options };
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: intraOpThreadsFor(o.intraOpThreads),
      graphOptimizationLevel: o.graphOptimizationLevel,
      logSeverityLevel: o.logSeverityLevel,
      ...(o.optimizedModelFilePath ? { optimizedModelFilePath: o.optimizedModelFilePath } : {}),
      ...(o.profileFilePrefix ? { enableProfiling: true, profileFilePrefix: o.profileFilePrefix } : {}),
      ...(o.allowSpinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
    });
  } catch (error) {
    throw new FleetError(
      'RUNTIME_LOAD',
      `onnxruntime could not load the model: ${(error as Error).message}`,
      undefined,
      {
        cause: error,
      },
    );
  }
}
