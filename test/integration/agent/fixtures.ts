import { attr, floatInput, makeModel, makeNode } from '../../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../../cloud/compression/onnx/proto.js';
import { floatTensor } from '../../../cloud/compression/onnx/tensor.js';
import { createSession, ort } from '../../../cloud/compression/runtime/ort.js';
import { sha256Hex } from '../../../shared/hash.js';
import {
  encodeGoldenSet,
  type FleetKeyPair,
  type GoldenSet,
  generateFleetKeyPair,
  goldenTensor,
  signManifest,
  signTarget,
} from '../../../shared/manifest/index.js';
import type { Manifest, TargetState } from '../../../shared/protocol/index.js';
import { createRng, gaussian } from '../../../shared/random.js';

/** A real ONNX MLP: x[batch, inputs] -> Gemm -> Relu -> Gemm -> y[batch, outputs]. */
export function buildMlp(
  options: { inputs?: number; hidden?: number; outputs?: number; seed?: number } = {},
): Buffer {
  const { inputs = 16, hidden = 32, outputs = 4, seed = 7 } = options;
  const rng = createRng(seed);
  const weights = (n: number, scale: number) => Float32Array.from({ length: n }, () => gaussian(rng) * scale);
  const model = makeModel(
    [
      makeNode('Gemm', ['x', 'w1', 'b1'], ['h'], [attr.int('transB', 1)]),
      makeNode('Relu', ['h'], ['r']),
      makeNode('Gemm', ['r', 'w2', 'b2'], ['y'], [attr.int('transB', 1)]),
    ],
    [floatInput('x', ['batch', inputs])],
    [floatInput('y', ['batch', outputs])],
    {
      name: 'mlp',
      initializers: [
        floatTensor('w1', [hidden, inputs], weights(hidden * inputs, 1 / Math.sqrt(inputs))),
        floatTensor('b1', [hidden], weights(hidden, 0.1)),
        floatTensor('w2', [outputs, hidden], weights(outputs * hidden, 1 / Math.sqrt(hidden))),
        floatTensor('b2', [outputs], weights(outputs, 0.1)),
      ],
    },
  );
  return Buffer.from(encodeModel(model));
}

/** Golden set computed by the cloud's onnxruntime; `corrupt` shifts the expected outputs. */
export async function buildGolden(model: Buffer, inputs = 16, cases = 3, corrupt = 0): Promise<Buffer> {
  const session = await createSession(model);
  const rng = createRng(99);
  const set: GoldenSet = { v: 1, cases: [] };
  for (let i = 0; i < cases; i++) {
    const x = Float32Array.from({ length: inputs }, () => rng() * 2 - 1);
    const out = await session.run({ x: new ort.Tensor('float32', x, [1, inputs]) });
    const y = Float32Array.from(out.y.data as Float32Array, (v) => v + corrupt);
    set.cases.push({
      inputs: { x: goldenTensor('float32', [1, inputs], x) },
      outputs: { y: goldenTensor('float32', [1, y.length], y) },
    });
  }
  await session.release();
  return encodeGoldenSet(set);
}

/** The fleet key of test clouds that are given none (FakeCloud), and of targets made without one. */
export const TEST_FLEET_KEYS = generateFleetKeyPair();

export interface ManifestOverrides extends Partial<Manifest> {}

export function makeManifest(model: Buffer, overrides: ManifestOverrides = {}, golden?: Buffer): Manifest {
  const now = Date.now();
  return {
    modelId: 'mlp',
    name: 'test mlp',
    variant: 'fp32',
    version: 1,
    sha256: sha256Hex(model),
    size: model.length,
    blockSize: 4096,
    profile: null,
    inputs: [{ name: 'x', shape: ['batch', 16], type: 'float32' }],
    outputs: [{ name: 'y', shape: ['batch', 4], type: 'float32' }],
    golden: golden ? { sha256: sha256Hex(golden), size: golden.length, tolerance: 1e-4 } : null,
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 3_600_000).toISOString(),
    release: overrides.version ?? 1,
    ...overrides,
  };
}

/**
 * A target state signed by `keys` (default TEST_FLEET_KEYS), as the cloud signs them; the
 * manifest inside carries `signature` when given (null: unsigned), else the same keys' signature.
 */
export function makeTarget(
  deviceId: string,
  version: number,
  manifest: Manifest | null,
  keys: FleetKeyPair = TEST_FLEET_KEYS,
  signature?: string | null,
  extra: { epoch?: number; rollback?: boolean } = {},
): TargetState {
  return signTarget(
    {
      v: 1,
      deviceId,
      version,
      ...extra,
      model: manifest
        ? { manifest, signature: signature !== undefined ? signature : signManifest(manifest, keys) }
        : null,
      issuedAt: new Date().toISOString(),
    },
    keys,
  );
}
