import type { Logger } from '../../shared/logger.js';
import type { BatchPolicy } from './batch-policy.js';
import { DirectExecutor, type ExecutionResult, type Executor, type RunResults } from './executor.js';
import type { Release } from './registry.js';
import type { AnyTypedArray, DecodedTensor } from './tensors.js';

/** Timers the batcher uses; tests pass a manual clock to check the delay bound without waiting. */
export interface BatchTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface BatchingExecutorOptions {
  /** The policy for a model name, null = that model is not batched. */
  policy: (model: string) => BatchPolicy | null;
  logger: Logger;
  /** Runs what is not batched and every merged batch. Default: one onnxruntime run per call. */
  direct?: Executor;
  /** Default: the global setTimeout / clearTimeout. */
  timers?: BatchTimers;
}

interface Waiting {
  inputs: DecodedTensor[];
  rows: number;
  resolve: (r: ExecutionResult) => void;
  reject: (e: unknown) => void;
}

interface Queue {
  release: Release;
  key: string;
  waiting: Waiting[];
  rows: number;
  timer: unknown;
}

const realTimers: BatchTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * True when every input's first dimension is a batch dimension (symbolic in the model): only
 * then can requests be stacked along it.
 */
export function hasBatchDimension(release: Release): boolean {
  return release.inputs.length > 0 && release.inputs.every((s) => s.shape.length > 0 && s.shape[0] === -1);
}

/** Rows of a request: the common first dimension of its inputs, or null when they disagree. */
function rowsOf(inputs: readonly DecodedTensor[]): number | null {
  const rows = inputs[0]?.shape[0];
  if (rows === undefined || inputs.some((t) => t.shape.length === 0 || t.shape[0] !== rows)) return null;
  return rows;
}

/** Requests merge only with requests whose inputs agree on every dimension but the first. */
function shapeKey(inputs: readonly DecodedTensor[]): string {
  let key = '';
  for (const t of inputs) key += `${t.name}:${t.shape.slice(1).join('x')};`;
  return key;
}

/**
 * Dynamic batching: concurrent requests for the same release of a model are concatenated along
 * the first dimension into one onnxruntime run, and the outputs are split back per request. A
 * queue runs when it holds `maxBatch` rows or when its first request has waited
 * `maxQueueDelayMs`, whichever comes first, so no request waits longer than the delay before its
 * run starts; batches do not wait for each other (onnxruntime runs them side by side).
 * Queues are per release: requests that started on a release finish on it during a hot swap.
 * A request larger than `maxBatch`, or for a model without a batch dimension, runs alone.
 */
export class BatchingExecutor implements Executor {
  private readonly direct: Executor;
  private readonly timers: BatchTimers;
  private readonly queues = new WeakMap<Release, Map<string, Queue>>();
  /** Releases whose outputs turned out not to follow the batch: run one by one from then on. */
  private readonly unbatchable = new WeakSet<Release>();

  constructor(private readonly o: BatchingExecutorOptions) {
    this.direct = o.direct ?? new DirectExecutor();
    this.timers = o.timers ?? realTimers;
  }

  run(release: Release, inputs: DecodedTensor[]): Promise<ExecutionResult> {
    const policy = this.o.policy(release.name);
    const rows = rowsOf(inputs);
    if (
      !policy ||
      policy.maxBatch <= 1 ||
      rows === null ||
      rows === 0 ||
      rows >= policy.maxBatch ||
      this.unbatchable.has(release) ||
      !hasBatchDimension(release)
    ) {
      return this.direct.run(release, inputs);
    }
    return new Promise((resolve, reject) => {
      const key = shapeKey(inputs);
      let queue = this.queueFor(release, key);
      // Adding this request would overflow the batch: what waits runs now, this one starts anew.
      if (queue.rows + rows > policy.maxBatch) {
        this.flush(queue);
        queue = this.queueFor(release, key);
      }
      queue.waiting.push({ inputs, rows, resolve, reject });
      queue.rows += rows;
      if (queue.rows >= policy.maxBatch) this.flush(queue);
      else if (queue.waiting.length === 1) {
        queue.timer = this.timers.setTimeout(() => this.flush(queue), policy.maxQueueDelayMs);
      }
    });
  }

  private queueFor(release: Release, key: string): Queue {
    let byKey = this.queues.get(release);
    if (!byKey) {
      byKey = new Map();
      this.queues.set(release, byKey);
    }
    let queue = byKey.get(key);
    if (!queue) {
      queue = { release, key, waiting: [], rows: 0, timer: undefined };
      byKey.set(key, queue);
    }
    return queue;
  }

  /** Runs everything the queue holds as one batch and empties it. */
  private flush(queue: Queue): void {
    if (queue.timer !== undefined) this.timers.clearTimeout(queue.timer);
    queue.timer = undefined;
    // Emptied queues go, so shapes seen once (a symbolic width) do not pile up.
    const byKey = this.queues.get(queue.release);
    if (byKey?.get(queue.key) === queue) byKey.delete(queue.key);
    const batch = queue.waiting;
    queue.waiting = [];
    queue.rows = 0;
    if (batch.length === 0) return;
    if (batch.length === 1) this.runEach(queue.release, batch);
    else void this.runMerged(queue.release, batch);
  }

  private async runMerged(release: Release, batch: Waiting[]): Promise<void> {
    const total = batch.reduce((n, w) => n + w.rows, 0);
    let result: ExecutionResult;
    let parts: RunResults[] | null;
    try {
      result = await this.direct.run(release, mergeInputs(batch, total));
      parts = splitResults(result.results, batch, total);
    } catch {
      // One bad request spoils a merged run: each runs alone and gets its own answer or error.
      this.runEach(release, batch);
      return;
    }
    if (!parts) {
      this.unbatchable.add(release);
      this.o.logger.warn(
        { model: release.name, version: release.version },
        'an output does not follow the batch dimension: this release runs requests one by one',
      );
      this.runEach(release, batch);
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i].resolve({ ...result, results: parts[i] });
  }

  /** Each request on its own run; a synchronous throw becomes that request's error (never a timer's). */
  private runEach(release: Release, batch: Waiting[]): void {
    for (const w of batch) {
      let run: Promise<ExecutionResult>;
      try {
        run = this.direct.run(release, w.inputs);
      } catch (error) {
        run = Promise.reject(error);
      }
      run.then(w.resolve, w.reject);
    }
  }
}

/** Concatenates the batch's inputs along the first dimension (one copy per input). */
export function mergeInputs(batch: readonly { inputs: DecodedTensor[]; rows: number }[], total: number) {
  return batch[0].inputs.map((first) => {
    const rowSize = rowElements(first.shape);
    const data: AnyTypedArray = new first.type.array(total * rowSize);
    let row = 0;
    for (const w of batch) {
      const t = w.inputs.find((x) => x.name === first.name)!;
      data.set(t.data, row * rowSize);
      row += w.rows;
    }
    return { ...first, shape: [total, ...first.shape.slice(1)], data };
  });
}

/** Each request's rows of every output (views, no copy); null when an output is not batched. */
export function splitResults(
  results: RunResults,
  batch: readonly { rows: number }[],
  total: number,
): RunResults[] | null {
  const parts: RunResults[] = batch.map(() => ({}));
  for (const [name, out] of Object.entries(results)) {
    if (out.dims.length === 0 || Number(out.dims[0]) !== total) return null;
    const dims = Array.from(out.dims, Number);
    const rowSize = rowElements(dims);
    let row = 0;
    for (let i = 0; i < batch.length; i++) {
      const rows = batch[i].rows;
      parts[i][name] = {
        data: out.data.subarray(row * rowSize, (row + rows) * rowSize),
        dims: [rows, ...dims.slice(1)],
      };
      row += rows;
    }
  }
  return parts;
}

function rowElements(shape: readonly number[]): number {
  let n = 1;
  for (let i = 1; i < shape.length; i++) n *= shape[i];
  return n;
}
