import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRng, gaussian, permutation } from '../../shared/random.js';
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
 * onnxruntime runs it step by step. The CNN uses fixed random convolutions with BatchNorm
 * statistics measured on the data and a trained MLP head. Cached as .onnx files.
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

/** Conv-BN-ReLU-MaxPool ×2 with fixed random filters, BN statistics from the data. */
async function convStack(x: Float32Array, count: number, seed: number) {
  const rng = createRng(seed);
  const specs = [
    { cin: 1, cout: 16 },
    { cin: 16, cout: 32 },
  ];
  const nodes: NodeProto[] = [];
  const inits = [];
  let h = 'input';
  for (const [i, s] of specs.entries()) {
    const fan = s.cin * 9;
    inits.push(
      floatTensor(
        `conv${i}_w`,
        [s.cout, s.cin, 3, 3],
        Float32Array.from({ length: s.cout * fan }, () => gaussian(rng) * Math.sqrt(2 / fan)),
      ),
      floatTensor(`conv${i}_b`, [s.cout], new Float32Array(s.cout)),
    );
    nodes.push(
      makeNode(
        'Conv',
        [h, `conv${i}_w`, `conv${i}_b`],
        [`conv${i}`],
        [attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1])],
        `conv${i}`,
      ),
    );
    // Measure the channel statistics the BatchNorm will normalise with.
    const probe = makeModel(nodes, [floatInput('input', ['N', 1, 28, 28])], [floatInput(`conv${i}`, [])], {
      opset: 13,
      initializers: inits,
    });
    const session = await createSession(encodeModel(probe), { intraOpThreads: 2 });
    const n = Math.min(count, 1000);
    const out = (
      await session.run({ input: new ort.Tensor('float32', x.slice(0, n * 784), [n, 1, 28, 28]) })
    )[`conv${i}`];
    await session.release();
    const data = out.data as Float32Array;
    const hw = out.dims[2] * out.dims[3];
    const mean = new Float32Array(s.cout);
    const variance = new Float32Array(s.cout);
    for (let c = 0; c < s.cout; c++) {
      let sum = 0;
      let sq = 0;
      for (let k = 0; k < n; k++)
        for (let p = 0; p < hw; p++) {
          const v = data[(k * s.cout + c) * hw + p];
          sum += v;
          sq += v * v;
        }
      mean[c] = sum / (n * hw);
      variance[c] = sq / (n * hw) - mean[c] * mean[c];
    }
    inits.push(
      floatTensor(
        `bn${i}_scale`,
        [s.cout],
        Float32Array.from({ length: s.cout }, () => 0.5 + rng()),
      ),
      floatTensor(
        `bn${i}_bias`,
        [s.cout],
        Float32Array.from({ length: s.cout }, () => (rng() - 0.5) * 0.2),
      ),
      floatTensor(`bn${i}_mean`, [s.cout], mean),
      floatTensor(`bn${i}_var`, [s.cout], variance),
    );
    nodes.push(
      makeNode(
        'BatchNormalization',
        [`conv${i}`, `bn${i}_scale`, `bn${i}_bias`, `bn${i}_mean`, `bn${i}_var`],
        [`bn${i}`],
        [attr.float('epsilon', 1e-5)],
        `bn${i}`,
      ),
      makeNode('Relu', [`bn${i}`], [`relu${i}`], [], `relu${i}`),
      makeNode(
        'MaxPool',
        [`relu${i}`],
        [`pool${i}`],
        [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])],
        `pool${i}`,
      ),
    );
    h = `pool${i}`;
  }
  nodes.push(makeNode('Flatten', [h], ['features'], [attr.int('axis', 1)], 'flatten'));
  return { nodes, inits };
}

/** A CNN with BatchNorm and pooling: input [N, 1, 28, 28], logits [N, 10]. */
export async function buildMnistCnn(options: Partial<TrainOptions> = {}): Promise<ModelProto> {
  const { train } = mnistSplit();
  const stack = await convStack(train.x, train.count, 11);
  const featureModel = makeModel(
    stack.nodes,
    [floatInput('input', ['N', 1, 28, 28])],
    [floatInput('features', [])],
    {
      opset: 13,
      initializers: stack.inits,
    },
  );
  const session = await createSession(encodeModel(featureModel), { intraOpThreads: 2 });
  const features = new Float32Array(train.count * 1568);
  for (let s = 0; s < train.count; s += 500) {
    const n = Math.min(500, train.count - s);
    const r = await session.run({
      input: new ort.Tensor('float32', train.x.slice(s * 784, (s + n) * 784), [n, 1, 28, 28]),
    });
    features.set(r.features.data as Float32Array, s * 1568);
  }
  await session.release();
  const head = await trainMlp(features, train.y, [1568, 128, 10], { lr: 0.02, ...options });
  const { nodes, inits } = mlpNodes(head, 'features', 'head');
  return makeModel(
    [...stack.nodes, ...nodes],
    [floatInput('input', ['N', 1, 28, 28])],
    [floatInput('logits', ['N', 10])],
    {
      opset: 13,
      initializers: [...stack.inits, ...inits],
      name: 'mnist_cnn',
    },
  );
}

const BUILDERS = { 'mnist-mlp': buildMnistMlp, 'mnist-cnn': buildMnistCnn };
export type ReferenceModelName = keyof typeof BUILDERS;

/** Path of a reference model in `cacheDir`, training it on first use (a few seconds). */
export async function referenceModel(name: ReferenceModelName, cacheDir = '.fleetml/cache'): Promise<string> {
  const path = join(cacheDir, `${name}.onnx`);
  if (!existsSync(path)) {
    mkdirSync(cacheDir, { recursive: true });
    await saveModel(await BUILDERS[name](), path);
  }
  return path;
}

export { loadModel };
