import { floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

/** Seeded standard-normal samples scaled by `s`. */
export function normalSampler(seed: number): (n: number, s?: number) => Float32Array {
  const rng = createRng(seed);
  return (n, s = 1) => Float32Array.from({ length: n }, () => gaussian(rng) * s);
}

/**
 * x -> fc1 -> relu -> fc2 -> fc3. fc2 gives one output column a 2000× gain that fc3 undoes, so
 * the tensor h2 between fc2 and fc3 has one huge channel and per-tensor int8 wipes out the rest:
 * only that part of the network is hurt by quantization.
 */
export function outlierChannelModel(randn: (n: number, s?: number) => Float32Array): ModelProto {
  const w2 = randn(32 * 32, 0.2);
  for (let r = 0; r < 32; r++) w2[r * 32 + 5] *= 2000;
  const w3 = randn(32 * 8, 0.2);
  for (let c = 0; c < 8; c++) w3[5 * 8 + c] /= 2000;
  return makeModel(
    [
      makeNode('Gemm', ['x', 'w1', 'b1'], ['h1'], [], 'fc1'),
      makeNode('Relu', ['h1'], ['r1'], [], 'relu1'),
      makeNode('Gemm', ['r1', 'w2', 'b2'], ['h2'], [], 'fc2'),
      makeNode('Gemm', ['h2', 'w3', 'b3'], ['y'], [], 'fc3'),
    ],
    [floatInput('x', ['N', 16])],
    [floatInput('y', ['N', 8])],
    {
      opset: 13,
      initializers: [
        floatTensor('w1', [16, 32], randn(512, 0.3)),
        floatTensor('b1', [32], randn(32, 0.1)),
        floatTensor('w2', [32, 32], w2),
        floatTensor('b2', [32], randn(32, 0.1)),
        floatTensor('w3', [32, 8], w3),
        floatTensor('b3', [8], randn(8, 0.1)),
      ],
    },
  );
}
