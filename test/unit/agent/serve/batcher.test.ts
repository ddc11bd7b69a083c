import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datatypeOf } from '../../../../agent/serve/datatypes.js';
import type { ExecutionResult } from '../../../../agent/serve/executor.js';
import {
  BatchingExecutor,
  type BatchTimers,
  DirectExecutor,
  type Executor,
  ModelRegistry,
  type Release,
} from '../../../../agent/serve/index.js';
import type { DecodedTensor } from '../../../../agent/serve/tensors.js';
import {
  attr,
  floatInput,
  makeModel,
  makeNode,
  makeValueInfo,
} from '../../../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../../../cloud/compression/onnx/proto.js';
import { floatTensor } from '../../../../cloud/compression/onnx/tensor.js';
import { DataType } from '../../../../cloud/compression/onnx/types.js';
import { createLogger } from '../../../../shared/logger.js';
import { digit, SAMPLE } from './helpers.js';

const logger = createLogger({ name: 'test', level: 'silent' });
const FP32 = datatypeOf('FP32')!;
const INT64 = datatypeOf('INT64')!;

/** Timers fired by hand: the delay bound is checked as logic, without waiting. */
class ManualTimers implements BatchTimers {
  readonly armed: { fn: () => void; ms: number; cleared: boolean }[] = [];
  setTimeout(fn: () => void, ms: number) {
    const t = { fn, ms, cleared: false };
    this.armed.push(t);
    return t;
  }
  clearTimeout(handle: unknown) {
    (handle as { cleared: boolean }).cleared = true;
  }
  pending() {
    return this.armed.filter((t) => !t.cleared);
  }
  fireAll() {
    for (const t of this.pending()) {
      t.cleared = true;
      t.fn();
    }
  }
}

/** The real one-run-per-call executor, recording each run's release and rows. */
function recording(): Executor & { runs: string[] } {
  const direct = new DirectExecutor();
  const runs: string[] = [];
  return {
    runs,
    run(release, inputs) {
      runs.push(`${release.version}:${inputs[0].shape[0]}`);
      return direct.run(release, inputs);
    },
  };
}

function digits(seed: number, rows: number): DecodedTensor[] {
  const data = new Float32Array(rows * 784);
  for (let r = 0; r < rows; r++) data.set(digit(seed + r), r * 784);
  return [{ name: 'input', type: FP32, shape: [rows, 1, 28, 28], data }];
}

const settle = () => new Promise((r) => setImmediate(r));

function batcher(maxBatch: number, maxQueueDelayMs: number, direct: Executor, timers = new ManualTimers()) {
  return {
    timers,
    exec: new BatchingExecutor({ policy: () => ({ maxBatch, maxQueueDelayMs }), logger, direct, timers }),
  };
}

let registry: ModelRegistry;
let release: Release;

beforeAll(async () => {
  registry = new ModelRegistry({ ep: 'cpu', profile: { intraOpThreads: 1 }, logger });
  release = await registry.load({ name: 'mnist-mlp', version: '1', model: SAMPLE });
}, 60_000);
afterAll(() => registry?.close());

/** Each request's logits from a run of its own, for comparison. */
async function alone(r: Release, inputs: DecodedTensor[]) {
  return (await new DirectExecutor().run(r, inputs)).results;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>) {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThan(1e-4);
}

describe('dynamic batching on the MNIST model (real onnxruntime)', () => {
  it('merges concurrent requests into one run and gives each exactly its own rows', async () => {
    const direct = recording();
    const { exec, timers } = batcher(8, 5, direct);
    const requests = [digits(1, 1), digits(10, 2), digits(20, 1), digits(30, 3)];
    const pending = requests.map((r) => exec.run(release, r));
    await settle();
    expect(direct.runs).toEqual([]); // 7 rows < 8: waiting for more, or for the delay
    timers.fireAll();
    const results = await Promise.all(pending);
    expect(direct.runs).toEqual(['1:7']);
    // Every request of the batch starts with the merged run: its queue time includes the wait.
    expect(new Set(results.map((r) => r.startedAt)).size).toBe(1);
    for (const [i, r] of results.entries()) {
      const own = await alone(release, requests[i]);
      expect(Array.from(r.results.logits.dims)).toEqual([requests[i][0].shape[0], 10]);
      expectClose(r.results.logits.data, own.logits.data);
    }
  });

  it('runs a full batch at once, without waiting for the delay', async () => {
    const direct = recording();
    const { exec, timers } = batcher(4, 60_000, direct);
    const requests = [digits(1, 1), digits(2, 1), digits(3, 2)];
    const pending = requests.map((r) => exec.run(release, r));
    expect(direct.runs).toEqual(['1:4']);
    expect(timers.pending()).toEqual([]);
    const results = await Promise.all(pending);
    for (const [i, r] of results.entries())
      expectClose(r.results.logits.data, (await alone(release, requests[i])).logits.data);
  });

  it('never waits longer than the queue delay: one timer from the first request, not re-armed', async () => {
    const direct = recording();
    const { exec, timers } = batcher(16, 7, direct);
    const first = exec.run(release, digits(1, 1));
    // The deadline is set when the first request is queued...
    expect(timers.pending().map((t) => t.ms)).toEqual([7]);
    const later = [exec.run(release, digits(2, 1)), exec.run(release, digits(3, 1))];
    // ...and later arrivals do not push it back.
    expect(timers.armed).toHaveLength(1);
    await settle();
    expect(direct.runs).toEqual([]);
    timers.fireAll();
    await Promise.all([first, ...later]);
    expect(direct.runs).toEqual(['1:3']);
    // The next request starts a new queue with its own deadline.
    const next = exec.run(release, digits(4, 1));
    expect(timers.pending().map((t) => t.ms)).toEqual([7]);
    timers.fireAll();
    await next;
    expect(direct.runs).toEqual(['1:3', '1:1']);
  });

  it('runs what waits when the next request would overflow the batch', async () => {
    const direct = recording();
    const { exec, timers } = batcher(4, 60_000, direct);
    const a = exec.run(release, digits(1, 3));
    const b = exec.run(release, digits(5, 2));
    expect(direct.runs).toEqual(['1:3']);
    timers.fireAll();
    const [ra, rb] = await Promise.all([a, b]);
    expect(direct.runs).toEqual(['1:3', '1:2']);
    expectClose(rb.results.logits.data, (await alone(release, digits(5, 2))).logits.data);
    expectClose(ra.results.logits.data, (await alone(release, digits(1, 3))).logits.data);
  });

  it('runs a request of maxBatch rows or more alone, at once', async () => {
    const direct = recording();
    const { exec, timers } = batcher(8, 60_000, direct);
    const big = await exec.run(release, digits(1, 10));
    expect(Array.from(big.results.logits.dims)).toEqual([10, 10]);
    await exec.run(release, digits(1, 8));
    expect(direct.runs).toEqual(['1:10', '1:8']);
    expect(timers.armed).toEqual([]);
  });

  it('does not batch a model whose first dimension is fixed, nor a model without a policy', async () => {
    const direct = recording();
    const timers = new ManualTimers();
    const fixed: Release = {
      ...release,
      inputs: release.inputs.map((s) => ({ ...s, shape: [1, 1, 28, 28] })),
    };
    const exec = new BatchingExecutor({
      policy: (name) => (name === 'mnist-mlp' ? { maxBatch: 8, maxQueueDelayMs: 5 } : null),
      logger,
      direct,
      timers,
    });
    await Promise.all([exec.run(fixed, digits(1, 1)), exec.run(fixed, digits(2, 1))]);
    const other: Release = { ...release, name: 'other' };
    await Promise.all([exec.run(other, digits(1, 1)), exec.run(other, digits(2, 1))]);
    expect(direct.runs).toEqual(['1:1', '1:1', '1:1', '1:1']);
    expect(timers.armed).toEqual([]);
  });

  it('keeps requests on the release they started on across a hot swap', async () => {
    const own = new ModelRegistry({ ep: 'cpu', profile: { intraOpThreads: 1 }, logger });
    try {
      await own.load({ name: 'mnist-mlp', version: '1', model: SAMPLE });
      const direct = recording();
      const { exec, timers } = batcher(8, 5, direct);
      const old1 = own.acquire('mnist-mlp')!;
      const old2 = own.acquire('mnist-mlp')!;
      const onOld = [exec.run(old1, digits(1, 1)), exec.run(old2, digits(2, 1))];
      await own.load({ name: 'mnist-mlp', version: '2', model: SAMPLE });
      expect(old1.retired).toBe(true);
      const new1 = own.acquire('mnist-mlp')!;
      const onNew = [exec.run(new1, digits(3, 1))];
      timers.fireAll();
      const results = await Promise.all([...onOld, ...onNew]);
      expect([...direct.runs].sort()).toEqual(['1:2', '2:1']);
      expectClose(results[1].results.logits.data, (await alone(new1, digits(2, 1))).logits.data);
      for (const r of [old1, old2, new1]) own.done(r);
      expect(old1.inFlight).toBe(0);
    } finally {
      await own.close();
    }
  });
});

describe('dynamic batching when runs fail or outputs do not follow the batch', () => {
  let own: ModelRegistry;
  let lookup: Release;
  let summed: Release;

  beforeAll(async () => {
    own = new ModelRegistry({ ep: 'cpu', profile: { intraOpThreads: 1 }, logger });
    // Gather rows of an 8x3 table: an index past the table fails at run time, after validation.
    const table = Array.from({ length: 24 }, (_, i) => i);
    const gather = makeModel(
      [makeNode('Gather', ['table', 'idx'], ['out'], [attr.int('axis', 0)])],
      [makeValueInfo('idx', DataType.INT64, ['batch', 1])],
      [floatInput('out', ['batch', 1, 3])],
      { initializers: [floatTensor('table', [8, 3], table)] },
    );
    lookup = await own.load({ name: 'lookup', version: '1', model: encodeModel(gather) });
    // A second output that sums over everything: it has no batch dimension to split.
    const sum = makeModel(
      [makeNode('Relu', ['x'], ['y']), makeNode('ReduceSum', ['x'], ['total'], [attr.int('keepdims', 0)])],
      [floatInput('x', ['batch', 4])],
      [floatInput('y', ['batch', 4]), floatInput('total', [])],
      { opset: 13 },
    );
    summed = await own.load({ name: 'summed', version: '1', model: encodeModel(sum) });
  }, 60_000);
  afterAll(() => own?.close());

  const index = (i: number): DecodedTensor[] => [
    { name: 'idx', type: INT64, shape: [1, 1], data: BigInt64Array.from([BigInt(i)]) },
  ];
  const row = (values: number[]): DecodedTensor[] => [
    { name: 'x', type: FP32, shape: [1, 4], data: Float32Array.from(values) },
  ];

  it('a bad request in a merged run: each request gets its own result or its own error', async () => {
    const direct = recording();
    const { exec } = batcher(3, 60_000, direct);
    const outcomes = await Promise.allSettled([
      exec.run(lookup, index(1)),
      exec.run(lookup, index(99)),
      exec.run(lookup, index(3)),
    ]);
    expect(direct.runs).toEqual(['1:3', '1:1', '1:1', '1:1']);
    const value = (o: PromiseSettledResult<ExecutionResult>) =>
      o.status === 'fulfilled' ? Array.from(o.value.results.out.data as Float32Array) : o.reason;
    expect(value(outcomes[0])).toEqual([3, 4, 5]);
    expect(value(outcomes[2])).toEqual([9, 10, 11]);
    expect(outcomes[1]).toMatchObject({ status: 'rejected', reason: { code: 'RUNTIME_RUN' } });
  });

  it('an output without the batch dimension: each request runs alone, then the release is not batched', async () => {
    const direct = recording();
    const { exec, timers } = batcher(2, 60_000, direct);
    const [a, b] = await Promise.all([
      exec.run(summed, row([1, 2, 3, 4])),
      exec.run(summed, row([-1, 5, 0, 0])),
    ]);
    expect(direct.runs).toEqual(['1:2', '1:1', '1:1']);
    expect(Array.from(a.results.total.data)).toEqual([10]);
    expect(Array.from(b.results.total.data)).toEqual([4]);
    expect(Array.from(b.results.y.data)).toEqual([0, 5, 0, 0]);
    const armed = timers.armed.length;
    await Promise.all([exec.run(summed, row([1, 1, 1, 1])), exec.run(summed, row([2, 2, 2, 2]))]);
    expect(direct.runs).toEqual(['1:2', '1:1', '1:1', '1:1', '1:1']);
    expect(timers.armed).toHaveLength(armed);
  });
});
