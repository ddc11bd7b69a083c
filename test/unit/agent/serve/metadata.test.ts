import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InferenceService } from '../../../../agent/serve/index.js';
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
    expect(meta.outputs[0].shape).toEqual([-1, 10]);
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
