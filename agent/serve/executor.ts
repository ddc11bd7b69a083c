import { performance } from 'node:perf_hooks';
import { FleetError } from '../../shared/errors/index.js';
import { makeTensor, type OrtFeeds } from '../runtime/ort.js';
import type { Release } from './registry.js';
import type { AnyTypedArray, DecodedTensor } from './tensors.js';

export type RunResults = Record<string, { data: AnyTypedArray; dims: readonly number[] }>;

export interface ExecutionResult {
  results: RunResults;
  /** performance.now() when the onnxruntime run began. */
  startedAt: number;
  computeMs: number;
}

/** Runs decoded inputs on a release's session (directly, or merged with others by a batcher). */
export interface Executor {
  run(release: Release, inputs: DecodedTensor[]): Promise<ExecutionResult>;
}

export function toFeeds(inputs: readonly DecodedTensor[]): OrtFeeds {
  const feeds: OrtFeeds = {};
  for (const t of inputs) feeds[t.name] = makeTensor(t.type.ort, t.data, t.shape);
  return feeds;
}

export async function runSession(release: Release, feeds: OrtFeeds): Promise<ExecutionResult> {
  const startedAt = performance.now();
  let results: RunResults;
  try {
    results = (await release.session.run(feeds)) as unknown as RunResults;
  } catch (error) {
    throw new FleetError('RUNTIME_RUN', `onnxruntime failed: ${(error as Error).message.split('\n')[0]}`);
  }
  return { results, startedAt, computeMs: performance.now() - startedAt };
}

/** One onnxruntime run per request. */
export class DirectExecutor implements Executor {
  run(release: Release, inputs: DecodedTensor[]): Promise<ExecutionResult> {
    return runSession(release, toFeeds(inputs));
  }
}
