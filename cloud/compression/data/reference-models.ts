import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRng, gaussian, permutation } from '../../../shared/random.js';
import { buildTemplate } from '../distill/students/templates.js';
import { trainStudent } from '../distill/trainer.js';
import { attr, floatInput, makeModel, makeNode } from '../onnx/build.js';
import { loadModel, saveModel } from '../onnx/io.js';
import { encodeModel } from '../onnx/proto.js';
import { floatTensor, int64Tensor } from '../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../onnx/types.js';
import { createSession, ort } from '../runtime/ort.js';
import { mnistSplit } from './mnist.js';

/**
 * Small trained MNIST models for benchmarks and tests, produced without any training framework:
 * one ONNX graph holds forward pass, softmax cross-entropy gradient and the SGD update, and
 * onnxruntime runs it step by step. The CNN is trained by cloud/compression/distill's trainer. Cached as
 * .onnx files under .fleetml/cache (never committed).
 */
export interface MlpWeights {
  sizes: number[];
  w: Float32Array[];
  b: Float32Array[];
}

/** The SGD training step graph of an MLP with ReLU hidden layers. */
function trainStepModel(sizes: number[]): ModelProto {
  const L = sizes.length - 1;
  const nodes: NodeProto[] = [];
  const n = (op: string, i: string[], o: string[], a: ReturnType<typeof attr.int>[] = []) =>
    nodes.push(makeNode(op, i, o, a));
  let h = 'x';
  for (let l = 0; l < L; l++) {
    n('MatMul', [h, `w${l}`], [`m${l}`]);
    n('Add', [`m${l}`, `b${l}`], [`z${l}`]);
    if (l < L - 1) {
      n('Relu', [`z${l}`], [`h${l}`]);
      h = `h${l}`;
    }
  }
  n('Softmax', [`z${L - 1}`], ['p'], [attr.int('axis', -1)]);
  n('Sub', ['p', 'y'], ['diff']);
  n('Mul', ['diff', 'inv_batch'], [`dz${L - 1}`]);
  for (let l = L - 1; l >= 0; l--) {
    const input = l === 0 ? 'x' : `h${l - 1}`;
    n('Transpose', [input], [`it${l}`], [attr.ints('perm', [1, 0])]);
    n('MatMul', [`it${l}`, `dz${l}`], [`dw${l}`]);
    n('ReduceSum', [`dz${l}`, 'axis0'], [`db${l}`], [attr.int('keepdims', 0)]);
    n('Mul', [`dw${l}`, 'lr'], [`sw${l}`]);
    n('Sub', [`w${l}`, `sw${l}`], [`nw${l}`]);
    n('Mul', [`db${l}`, 'lr'], [`sb${l}`]);
    n('Sub', [`b${l}`, `sb${l}`], [`nb${l}`]);
    if (l > 0) {
      n('Transpose', [`w${l}`], [`wt${l}`], [attr.ints('perm', [1, 0])]);
      n('MatMul', [`dz${l}`, `wt${l}`], [`dh${l - 1}`]);
      n('Greater', [`z${l - 1}`, 'zero'], [`mask${l - 1}`]);
      n('Cast', [`mask${l - 1}`], [`maskf${l - 1}`], [attr.int('to', 1)]);
      n('Mul', [`dh${l - 1}`, `maskf${l - 1}`], [`dz${l - 1}`]);
    }
  }
  const inputs = [
    floatInput('x', ['B', sizes[0]]),
    floatInput('y', ['B', sizes[L]]),
    floatInput('lr', []),
    floatInput('inv_batch', []),
    ...sizes
      .slice(0, L)
      .flatMap((s, l) => [floatInput(`w${l}`, [s, sizes[l + 1]]), floatInput(`b${l}`, [sizes[l + 1]])]),
  ];
  const outputs = sizes
    .slice(0, L)
    .flatMap((s, l) => [floatInput(`nw${l}`, [s, sizes[l + 1]]), floatInput(`nb${l}`, [sizes[l + 1]])]);
  return makeModel(nodes, inputs, outputs, {
    opset: 13,
    initializers: [floatTensor('zero', [], [0]), int64Tensor('axis0', [1], [0])],
  });
}

export interface TrainOptions {
  /** Passes over the data; default 6. */
  epochs: number;
  /** Samples per step; default 64. */
  batch: number;
  /** SGD learning rate; default 0.05. */
  lr: number;
  seed: number;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = { epochs: 6, batch: 64, lr: 0.05, seed: 7 };

export async function trainMlp(
  x: Float32Array,
  labels: Int32Array,
  sizes: number[],
  options: Partial<TrainOptions> = {},
): Promise<MlpWeights> {
  const o = { ...DEFAULT_TRAIN_OPTIONS, ...options };
  const rng = createRng(o.seed);
  const L = sizes.length - 1;
  const w = sizes
    .slice(0, L)
    .map((s, l) => Float32Array.from({ length: s * sizes[l + 1] }, () => gaussian(rng) * Math.sqrt(2 / s)));
  const b: Float32Array<ArrayBufferLike>[] = sizes.slice(1).map((s) => new Float32Array(s));
  const session = await createSession(encodeModel(trainStepModel(sizes)), { intraOpThreads: 2 });
  const count = labels.length;
  const d = sizes[0];
  const classes = sizes[L];
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = permutation(count, rng);
      const lr = o.lr * (epoch < o.epochs - 2 ? 1 : 0.3);
      for (let start = 0; start + o.batch <= count; start += o.batch) {
        const bx = new Float32Array(o.batch * d);
        const by = new Float32Array(o.batch * classes);
        for (let i = 0; i < o.batch; i++) {
          const k = order[start + i];
          bx.set(x.subarray(k * d, (k + 1) * d), i * d);
          by[i * classes + labels[k]] = 1;
        }
        const feeds: Record<string, ort.Tensor> = {
          x: new ort.Tensor('float32', bx, [o.batch, d]),
          y: new ort.Tensor('float32', by, [o.batch, classes]),
          lr: new ort.Tensor('float32', Float32Array.of(lr), []),
          inv_batch: new ort.Tensor('float32', Float32Array.of(1 / o.batch), []),
        };
        for (let l = 0; l < L; l++) {
          feeds[`w${l}`] = new ort.Tensor('float32', w[l], [sizes[l], sizes[l + 1]]);
          feeds[`b${l}`] = new ort.Tensor('float32', b[l], [sizes[l + 1]]);
        }
        const r = await session.run(feeds);
        for (let l = 0; l < L; l++) {
          w[l] = Float32Array.from(r[`nw${l}`].data as Float32Array);
          b[l] = Float32Array.from(r[`nb${l}`].data as Float32Array);
        }
      }
    }
  } finally {
    await session.release();
  }
  return { sizes, w, b };
}

/** Gemm layers (+ ReLU) for trained weights, reading from `input`. */
function mlpNodes(weights: MlpWeights, input: string, prefix: string) {
  const nodes: NodeProto[] = [];
  const inits = [];
  let h = input;
  const L = weights.sizes.length - 1;
  for (let l = 0; l < L; l++) {
    inits.push(
      floatTensor(`${prefix}w${l}`, [weights.sizes[l], weights.sizes[l + 1]], weights.w[l]),
      floatTensor(`${prefix}b${l}`, [weights.sizes[l + 1]], weights.b[l]),
    );
    const out = l === L - 1 ? 'logits' : `${prefix}z${l}`;
    nodes.push(makeNode('Gemm', [h, `${prefix}w${l}`, `${prefix}b${l}`], [out], [], `${prefix}gemm${l}`));
    if (l < L - 1) {
      nodes.push(makeNode('Relu', [out], [`${prefix}h${l}`], [], `${prefix}relu${l}`));
      h = `${prefix}h${l}`;
    }
  }
  return { nodes, inits };
}

/** The 784-800-800-10 MLP: input [N, 1, 28, 28] (flattened inside), output logits [N, 10]. */
export async function buildMnistMlp(options: Partial<TrainOptions> = {}): Promise<ModelProto> {
  const { train } = mnistSplit();
  const weights = await trainMlp(train.x, train.y, [784, 800, 800, 10], options);
  const { nodes, inits } = mlpNodes(weights, 'flat', 'fc');
  return makeModel(
    [makeNode('Flatten', ['input'], ['flat'], [attr.int('axis', 1)], 'flatten'), ...nodes],
    [floatInput('input', ['N', 1, 28, 28])],
    [floatInput('logits', ['N', 10])],
    { opset: 13, initializers: inits, name: 'mnist_mlp' },
  );
}

export interface CnnOptions {
  /** Output channels of the 3×3 Conv-BN-ReLU-MaxPool blocks; default [32, 64, 128]. */
  channels: number[];
  /** Passes over the 8000 training digits; default 8. */
  epochs: number;
  /** Seed of initialisation, shuffling and shifts; default 1. */
  seed: number;
}

export const DEFAULT_CNN_OPTIONS: CnnOptions = { channels: [32, 64, 128], epochs: 8, seed: 1 };

/**
 * A CNN with BatchNorm and pooling, every layer trained (distill's `cnn:` template with hard
 * labels on onnxruntime): input [N, 1, 28, 28], logits [N, 10]. Its convolutions are wide
 * enough (32/64/128 channels) that int8 kernels pay for their Q/DQ. About 4 minutes on 2 cores.
 */
export async function buildMnistCnn(options: Partial<CnnOptions> = {}): Promise<ModelProto> {
  const o = { ...DEFAULT_CNN_OPTIONS, ...options };
  const { train } = mnistSplit();
  const student = buildTemplate(
    { kind: 'cnn', channels: o.channels },
    { sampleShape: train.sampleShape, classes: 10, seed: o.seed },
  );
  // No validation set: the test digits must not pick the epoch that the benchmark reports on.
  const result = await trainStudent(
    student,
    undefined,
    { x: train.x, y: train.y, count: train.count, sampleShape: train.sampleShape },
    undefined,
    {
      epochs: o.epochs,
      batch: 64,
      stepsPerRun: 8,
      seed: o.seed,
      shift: 2,
      loss: { mode: 'hard' },
      optimizer: { kind: 'adam', lr: 2e-3 },
      schedule: { kind: 'cosine' },
    },
  );
  result.model.graph.name = 'mnist_cnn';
  return result.model;
}

// The file name changes with the architecture so that an old cached model is not reused.
const BUILDERS = {
  'mnist-mlp': { build: () => buildMnistMlp(), file: 'mnist-mlp.onnx' },
  'mnist-cnn': { build: () => buildMnistCnn(), file: 'mnist-cnn-32x64x128.onnx' },
};
export type ReferenceModelName = keyof typeof BUILDERS;

/** Path of a reference model in `cacheDir`, training it on first use (a few seconds). */
export async function referenceModel(name: ReferenceModelName, cacheDir = '.fleetml/cache'): Promise<string> {
  const path = join(cacheDir, BUILDERS[name].file);
  if (!existsSync(path)) {
    mkdirSync(cacheDir, { recursive: true });
    await saveModel(await BUILDERS[name].build(), path);
  }
  return path;
}

export { loadModel };
