import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { cosine } from '../../../../../cloud/compression/evaluate/metrics.js';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { fromFloat16Bits, toFloat16Bits } from '../../../../../cloud/compression/onnx/float16.js';
import { saveModel } from '../../../../../cloud/compression/onnx/io.js';
import { ort, runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { decodeModel, encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { floatTensor, tensorValues } from '../../../../../cloud/compression/onnx/tensor.js';
import { DataType, type ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { quantizeDynamic } from '../../../../../cloud/compression/quantize/dynamic.js';
import { convertToFp16 } from '../../../../../cloud/compression/quantize/fp16.js';
import { packInt4Blocks, quantizeInt4 } from '../../../../../cloud/compression/quantize/int4.js';
import { resolveReduceRange } from '../../../../../cloud/compression/quantize/target.js';
import { createSession } from '../../../../../cloud/compression/runtime/ort.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(9);
const randn = (n: number, s = 1) => Float32Array.from({ length: n }, () => gaussian(rng) * s);

/** x[N,100] -> Gemm(transB) 100->64 -> Relu -> MatMul 64->10 -> Softmax. */
function mlp(): ModelProto {
  return makeModel(
    [
      makeNode('Gemm', ['x', 'w1', 'b1'], ['h'], [attr.int('transB', 1)], 'fc1'),
      makeNode('Relu', ['h'], ['r'], [], 'relu'),
      makeNode('MatMul', ['r', 'w2'], ['logits'], [], 'fc2'),
      makeNode('Softmax', ['logits'], ['p'], [attr.int('axis', -1)], 'softmax'),
    ],
    [floatInput('x', ['N', 100])],
    [floatInput('p', ['N', 10])],
    {
      opset: 13,
      initializers: [
        floatTensor('w1', [64, 100], randn(6400, 0.1)),
        floatTensor('b1', [64], randn(64, 0.1)),
        floatTensor('w2', [64, 10], randn(640, 0.3)),
      ],
    },
  );
}

const x = new ort.Tensor('float32', randn(16 * 100), [16, 100]);

async function relError(model: ModelProto, q: ModelProto): Promise<number> {
  const a = (await runOnce(model, { x })).p.data as Float32Array;
  const b = (await runOnce(q, { x })).p.data as Float32Array;
  let err = 0;
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / Math.max(...a);
}

async function outputCosine(model: ModelProto, q: ModelProto): Promise<number> {
  const a = (await runOnce(model, { x })).p.data as Float32Array;
  const b = (await runOnce(q, { x })).p.data as Float32Array;
  return cosine(a, b);
}

async function optimizedOps(q: ModelProto): Promise<string[]> {
  const path = join(mkdtempSync(join(tmpdir(), 'fleetml-fmt-')), 'opt.onnx');
  const s = await createSession(encodeModel(q), { intraOpThreads: 1, optimizedModelFilePath: path });
  await s.release();
  return decodeModel(readFileSync(path)).graph.node.map((n) => n.opType);
}

describe('dynamic INT8', () => {
  it('rewrites Gemm and MatMul to integer matmuls that onnxruntime fuses, within 8-bit error', async () => {
    const model = mlp();
    const q = await quantizeDynamic(model);
    expect(q.quantizedNodes).toBe(2);
    expect(await relError(model, q.model)).toBeLessThan(0.03);
    const ops = await optimizedOps(q.model);
    expect(ops).not.toContain('MatMul');
    expect(ops).not.toContain('Gemm');
    expect(ops.filter((o) => o === 'DynamicQuantizeMatMul' || o === 'MatMulIntegerToFloat').length).toBe(2);
  });
});

describe('INT4 weight-only', () => {
  it('packs blocks in MatMulNBits layout (onnxruntime agrees with a JS reference)', async () => {
    const [k, n, block] = [40, 3, 16];
    const w = randn(k * n);
    const { packed, scales, blocks } = packInt4Blocks(w, k, n, block, true);
    expect(blocks).toBe(3);
    // Dequantize in JS and compare with MatMulNBits on an identity-like input.
    const deq = new Float32Array(k * n);
    for (let c = 0; c < n; c++)
      for (let r = 0; r < k; r++) {
        const b = Math.floor(r / block);
        const i = r % block;
        const byte = packed[(c * blocks + b) * (block / 2) + (i >> 1)];
        deq[r * n + c] = (((byte >> ((i & 1) * 4)) & 15) - 8) * scales[c * blocks + b];
        // Symmetric 4-bit: within half a step of the original.
        expect(Math.abs(deq[r * n + c] - w[r * n + c])).toBeLessThanOrEqual(
          scales[c * blocks + b] / 2 + 1e-6,
        );
      }
    const model = makeModel(
      [makeNode('MatMul', ['x', 'w'], ['y'], [], 'mm')],
      [floatInput('x', [2, k])],
      [floatInput('y', [2, n])],
      { initializers: [floatTensor('w', [k, n], w)] },
    );
    const q = await quantizeInt4(model, { blockSize: block });
    const xs = randn(2 * k);
    const y = (await runOnce(q.model, { x: new ort.Tensor('float32', xs, [2, k]) })).y.data as Float32Array;
    for (let r = 0; r < 2; r++)
      for (let c = 0; c < n; c++) {
        let ref = 0;
        for (let i = 0; i < k; i++) ref += xs[r * k + i] * deq[i * n + c];
        expect(y[r * n + c]).toBeCloseTo(ref, 3);
      }
  });

  it('turns every constant-weight matmul into MatMulNBits and stays close to float', async () => {
    const model = mlp();
    for (const symmetric of [true, false]) {
      const q = await quantizeInt4(model, { symmetric });
      expect(q.model.graph.node.filter((n) => n.opType === 'MatMulNBits')).toHaveLength(2);
      // 4-bit weights (15 levels per block of 32) move logits by several percent.
      expect(await outputCosine(model, q.model)).toBeGreaterThan(0.98);
    }
    await expect(quantizeInt4(model, { blockSize: 24 })).rejects.toThrow(/power of two/);
  });
});

describe('FP16', () => {
  it('keeps float32 I/O and Softmax in FP32, halves weights, stays within half precision', async () => {
    const model = mlp();
    const q = await convertToFp16(model);
    expect(q.floatOps).toEqual({ Softmax: 1 });
    const inits = q.model.graph.initializer ?? [];
    expect(inits.every((t) => t.dataType === DataType.FLOAT16)).toBe(true);
    expect(q.model.graph.input?.[0].type?.tensorType?.elemType).toBe(DataType.FLOAT);
    const softmax = q.model.graph.node.find((n) => n.opType === 'Softmax')!;
    const castIn = q.model.graph.node.find((n) => n.output[0] === softmax.input[0])!;
    expect(castIn.opType).toBe('Cast');
    expect(await relError(model, q.model)).toBeLessThan(0.01);
    expect(encodeModel(q.model).length / encodeModel(model).length).toBeLessThan(0.52);
  });

  it('converts half precision exactly where it can and clamps overflow', () => {
    for (const v of [0, 1, -2.5, 65504, 6.1035e-5, 1e-7, 0.1]) {
      expect(fromFloat16Bits(toFloat16Bits(v))).toBeCloseTo(v, 3);
    }
    expect(toFloat16Bits(1e6)).toBe(0x7c00);
    const t = tensorValues({
      name: 't',
      dataType: DataType.FLOAT16,
      dims: [1],
      rawData: new Uint8Array([0, 0x3c]),
    });
    expect(fromFloat16Bits(t[0] as number)).toBe(1);
  });
});

describe('quantize CLI formats', () => {
  it('--dynamic, --weights int4 and --fp16 write loadable models and report JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetml-cli-'));
    const input = join(dir, 'mlp.onnx');
    await saveModel(mlp(), input);
    const run = promisify(execFile);
    for (const [flag, op] of [
      // --allow-slower: a 16-wide MLP is too small for INT8 to win; the format is what is tested.
      [['--dynamic', '--allow-slower'], 'MatMulInteger'],
      [['--weights', 'int4'], 'MatMulNBits'],
      [['--weights', 'int4', '--block-size', '16'], 'MatMulNBits'],
      [['--fp16'], 'Cast'],
    ] as const) {
      const out = join(dir, `${flag.join('')}.onnx`);
      const { stdout } = await run('node', [
        'bin/fleetml.mjs',
        'quantize',
        input,
        '-o',
        out,
        ...flag,
        '--json',
      ]);
      const summary = JSON.parse(stdout);
      expect(summary.sizeBytes).toBeGreaterThan(0);
      // Dynamic INT8 says which CPU it was built for: 7-bit weights exactly on x86 without VNNI.
      if (flag[0] === '--dynamic') {
        expect(summary.reduceRange).toBe(resolveReduceRange('host'));
        expect(summary.chosen).toBe('dynamic');
      }
      const q = decodeModel(readFileSync(out));
      expect(q.graph.node.some((n) => n.opType === op)).toBe(true);
      if (op === 'MatMulNBits') {
        // --block-size (default 32) sets the INT4 block length along K.
        const blockSize = q.graph.node
          .find((n) => n.opType === op)
          ?.attribute?.find((a) => a.name === 'block_size');
        expect(Number(blockSize?.i)).toBe((flag as readonly string[]).includes('--block-size') ? 16 : 32);
      }
      await (await createSession(readFileSync(out))).release();
    }
  }, 300_000); // three CLI processes, each measuring its model against FP32, on a shared machine
});
