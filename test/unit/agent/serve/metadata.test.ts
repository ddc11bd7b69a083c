import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InferenceService, ModelRegistry, type Release } from '../../../../agent/serve/index.js';
import { tensorMetadata } from '../../../../agent/serve/tensors.js';
import { floatInput, makeModel, makeNode, makeValueInfo } from '../../../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../../../cloud/compression/onnx/proto.js';
import { DataType } from '../../../../cloud/compression/onnx/types.js';
import { createLogger } from '../../../../shared/logger.js';
import type { Manifest } from '../../../../shared/protocol/index.js';
import { inferBody, SAMPLE } from './helpers.js';

// GET /v2/models/{name} describes the model at the serving shape of its signed manifest
// (issue 14): symbolic dims the shape fills are reported with its values, the others as -1.
let dir: string;
let service: InferenceService;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetml-meta-'));
  service = new InferenceService({
    dataDir: dir,
    ep: 'cpu',
    profile: { intraOpThreads: 1 },
    dynamicDim: 1,
    logger: createLogger({ name: 'test', level: 'silent' }),
    hookCommand: '',
    http: { port: 0 },
  });
  expect(await service.start()).toBeNull();
});
afterEach(async () => {
  await service.stop();
  await rm(dir, { recursive: true, force: true });
});

function manifest(servingShapes?: Record<string, number[]>): Manifest {
  return {
    modelId: 'm-1',
    name: 'digits',
    variant: 'fp32',
    version: 1,
    sha256: 'ab'.repeat(32),
    size: 1,
    blockSize: 65_536,
    profile: null,
    inputs: [{ name: 'input', shape: ['N', 1, 28, 28], type: 'float32' }],
    outputs: [{ name: 'logits', shape: ['N', 10], type: 'float32' }],
    issuedAt: new Date().toISOString(),
    expiresAt: null,
    ...(servingShapes ? { servingShapes } : {}),
  } as Manifest;
}

async function metadata() {
  const res = await fetch(`${service.url}/v2/models/digits`);
  expect(res.status).toBe(200);
  return (await res.json()) as { inputs: { shape: number[] }[]; outputs: { shape: number[] }[] };
}

describe('model metadata and serving shapes', () => {
  it("reports the manifest's serving shape for the symbolic dims it fills; the rest stay -1", async () => {
    await service.activate(manifest({ input: [4, 1, 28, 28] }), SAMPLE);
    const meta = await metadata();
    expect(meta.inputs[0].shape).toEqual([4, 1, 28, 28]);
    // The output's batch dim follows from the serving shape (issue: it used to say -1).
    expect(meta.outputs[0].shape).toEqual([4, 10]);
    // The metadata describes; requests may still use any size the model accepts.
    const res = await fetch(`${service.url}/v2/models/digits/infer`, { method: 'POST', body: inferBody() });
    expect(res.status).toBe(200);
  });

  it('reports -1 for every symbolic dim without a serving shape (never the agent-wide dynamicDim)', async () => {
    await service.activate(manifest(), SAMPLE);
    const meta = await metadata();
    expect(meta.inputs[0].shape).toEqual([-1, 1, 28, 28]);
    expect(meta.outputs[0].shape).toEqual([-1, 10]);
  });
});

describe('output shapes at the serving shape', () => {
  const logger = createLogger({ name: 'test', level: 'silent' });
  let registry: ModelRegistry;
  beforeEach(() => {
    registry = new ModelRegistry({ ep: 'cpu', profile: { intraOpThreads: 1 }, logger });
  });
  afterEach(() => registry.close());

  const outputShapes = (r: Release) =>
    Object.fromEntries(r.outputs.map((o) => [o.name, tensorMetadata(o).shape]));

  it('fills an output dim named differently from the input dim by running the model at the serving shape', async () => {
    // y's first dim is called `rows`, x's `batch`: no name links them; the runs do.
    const model = makeModel(
      [makeNode('Relu', ['x'], ['y'])],
      [floatInput('x', ['batch', 4])],
      [floatInput('y', ['rows', 4])],
    );
    const served = await registry.load({
      name: 'relu',
      version: '1',
      model: encodeModel(model),
      servingShapes: { x: [3, 4] },
    });
    expect(outputShapes(served)).toEqual({ y: [3, 4] });
    const open = await registry.load({ name: 'relu-open', version: '1', model: encodeModel(model) });
    expect(outputShapes(open)).toEqual({ y: [-1, 4] });
  });

  it('leaves -1 where the output size depends on the values (NonZero), not only on the shape', async () => {
    const model = makeModel(
      [makeNode('NonZero', ['x'], ['where'])],
      [floatInput('x', ['batch', 4])],
      [makeValueInfo('where', DataType.INT64, ['rank', 'count'])],
      { opset: 13 },
    );
    const served = await registry.load({
      name: 'nz',
      version: '1',
      model: encodeModel(model),
      servingShapes: { x: [2, 4] },
    });
    // The rank of x (2) is the same for any values; the count of non-zeros is not.
    expect(outputShapes(served)).toEqual({ where: [2, -1] });
  });

  it('fills by name what a serving shape fixes when another input is left open', async () => {
    const model = makeModel(
      [makeNode('Relu', ['a'], ['y']), makeNode('Relu', ['b'], ['z'])],
      [floatInput('a', ['batch', 4]), floatInput('b', ['other', 4])],
      [floatInput('y', ['batch', 4]), floatInput('z', ['rows', 4])],
    );
    const served = await registry.load({
      name: 'two',
      version: '1',
      model: encodeModel(model),
      servingShapes: { a: [2, 4] },
    });
    expect(outputShapes(served)).toEqual({ y: [2, 4], z: [-1, 4] });
    // Requests are still checked against the model's own dims, not the described ones.
    expect(served.outputs.map((o) => o.shape)).toEqual([
      [-1, 4],
      [-1, 4],
    ]);
  });
});
