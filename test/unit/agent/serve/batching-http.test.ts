// Protocol replies are checked field by field.
type Json = any;

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSession, makeTensor } from '../../../../agent/runtime/ort.js';
import {
  BatchingExecutor,
  DirectExecutor,
  type Executor,
  parseBatching,
  policyFor,
} from '../../../../agent/serve/index.js';
import { createLogger } from '../../../../shared/logger.js';
import { digit, inferBody, SAMPLE, type Served, serveSample } from './helpers.js';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('batching settings', () => {
  it('reads the config-file object, the env string and repeated flags alike', () => {
    const expected = {
      'mnist-mlp': { maxBatch: 8, maxQueueDelayMs: 3 },
      '*': { maxBatch: 4, maxQueueDelayMs: 2 },
    };
    expect(parseBatching({ 'mnist-mlp': { maxBatch: 8, maxQueueDelayMs: 3 }, '*': { maxBatch: 4 } })).toEqual(
      expected,
    );
    expect(parseBatching('mnist-mlp=8:3,*=4')).toEqual(expected);
    expect(parseBatching(['mnist-mlp=8:3', '*=4'])).toEqual(expected);
    expect(parseBatching(undefined)).toEqual({});
    expect(parseBatching('')).toEqual({});
  });

  it('picks the model own policy, else *, else none', () => {
    const config = parseBatching('mnist-mlp=8:3');
    expect(policyFor(config, 'mnist-mlp')).toEqual({ maxBatch: 8, maxQueueDelayMs: 3 });
    expect(policyFor(config, 'ocr')).toBeNull();
    expect(policyFor(parseBatching('*=2:1'), 'ocr')).toEqual({ maxBatch: 2, maxQueueDelayMs: 1 });
  });

  it.each([
    ['mnist-mlp', /not model=maxBatch/],
    ['mnist-mlp=0', /not model=maxBatch/],
    ['mnist-mlp=x:2', /not model=maxBatch/],
    ['mnist-mlp=8:-1', /not model=maxBatch/],
    ['=8', /not model=maxBatch/],
    ['a=8,a=4', /names a twice/],
  ])('refuses %s with CONFIG_INVALID', (spec, message) => {
    expect(() => parseBatching(spec)).toThrow(message);
    try {
      parseBatching(spec);
    } catch (error) {
      expect((error as { code: string }).code).toBe('CONFIG_INVALID');
    }
  });

  it('refuses a malformed config-file object', () => {
    expect(() => parseBatching({ m: { maxBatch: 'many' } })).toThrow(/serveBatching\.m\.maxBatch/);
  });
});

describe('batched serving over HTTP', () => {
  let s: Served;
  const runs: number[] = [];

  beforeAll(async () => {
    const direct = new DirectExecutor();
    const counting: Executor = {
      run(release, inputs) {
        runs.push(inputs[0].shape[0]);
        return direct.run(release, inputs);
      },
    };
    // A batch of 8 and a delay far beyond the test: the batch runs exactly when the 8th good
    // request arrives, however slowly the machine delivers them.
    s = await serveSample(
      {},
      () =>
        new BatchingExecutor({
          policy: () => ({ maxBatch: 8, maxQueueDelayMs: 600_000 }),
          logger,
          direct: counting,
        }),
    );
  }, 60_000);
  afterAll(() => s?.stop());

  it('good and bad requests at once: each good one gets its own logits from one merged run, each bad one its own error', async () => {
    const session = await createSession(SAMPLE, { intraOpThreads: 1 });
    const expected: number[][] = [];
    for (let i = 0; i < 8; i++) {
      const out = await session.run({
        input: makeTensor('float32', Float32Array.from(digit(i + 1)), [1, 1, 28, 28]),
      });
      expected.push(Array.from(out.logits.data as Float32Array));
    }
    await session.release();
    const post = (body: string) => fetch(`${s.url}/v2/models/mnist-mlp/infer`, { method: 'POST', body });
    const bad = [
      post(inferBody(digit(1), [1, 784])),
      post(inferBody(digit(1), undefined, 'INT32')),
      post('{"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [1]}]}'),
    ];
    const good = Array.from({ length: 8 }, (_, i) =>
      post(
        JSON.stringify({
          id: `r${i}`,
          inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: digit(i + 1) }],
        }),
      ),
    );
    const goodReplies = await Promise.all(good);
    for (const [i, res] of goodReplies.entries()) {
      expect(res.status).toBe(200);
      const body = (await res.json()) as Json;
      expect(body.id).toBe(`r${i}`);
      expect(body.outputs[0].shape).toEqual([1, 10]);
      const got = body.outputs[0].data as number[];
      for (let k = 0; k < 10; k++) expect(got[k]).toBeCloseTo(expected[i][k], 4);
    }
    const badReplies = await Promise.all(bad);
    const codes = await Promise.all(badReplies.map(async (r) => [r.status, ((await r.json()) as Json).code]));
    expect(codes).toEqual([
      [400, 'ONNX_SHAPE'],
      [400, 'SERVE_DATATYPE'],
      [400, 'INPUT_INVALID'],
    ]);
    // Bad requests never reach a batch: one run of the eight good ones.
    expect(runs).toEqual([8]);
    expect(s.registry.get('mnist-mlp')!.inFlight).toBe(0);
  }, 60_000);
});
