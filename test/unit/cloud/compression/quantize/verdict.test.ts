import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { speedLine } from '../../../../../cloud/cli/quantize-report.js';
import { writeNpy } from '../../../../../cloud/compression/data/npy.js';
import { benchmarkFeeds, judgeSpeed } from '../../../../../cloud/compression/evaluate/verdict.js';
import { floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { saveModel } from '../../../../../cloud/compression/onnx/io.js';
import { decodeModel, encodeModel } from '../../../../../cloud/compression/onnx/proto.js';
import { floatTensor, tensorValues } from '../../../../../cloud/compression/onnx/tensor.js';
import { DataType } from '../../../../../cloud/compression/onnx/types.js';
import {
  type Int8Form,
  matmulOnlyExclusions,
  matmulWeightShare,
  pickFastest,
} from '../../../../../cloud/compression/quantize/choose.js';
import { normalSampler, outlierChannelModel } from './outlier-model.js';

const randn = normalSampler(31);

describe('never ship slower: INT8 against FP32', () => {
  it('calls INT8 faster only when its median is clearly lower and it wins significantly more paired runs', () => {
    const fp32 = [10, 10, 10, 10, 10, 10];
    expect(judgeSpeed(fp32, [6, 6, 6, 6, 6, 6], 0.03)).toMatchObject({
      latencyRatio: 0.6,
      wins: 6,
      verdict: 'faster',
    });
    expect(judgeSpeed(fp32, [9.8, 9.8, 9.8, 9.8, 9.8, 9.8], 0.03).verdict).toBe('not-faster');
    expect(judgeSpeed(fp32, [11, 11, 11, 11, 11, 11], 0.03)).toMatchObject({
      wins: 0,
      verdict: 'not-faster',
    });
    // A low median from 4 wins in 6 pairs is not significant (sign test, z 2.33): not faster.
    expect(judgeSpeed(fp32, [6, 6, 6, 6, 11, 11], 0.03)).toMatchObject({ wins: 4, verdict: 'not-faster' });
    expect(judgeSpeed(fp32, [6, 6, 6, 6, 11, 11], 0.03, 0)).toMatchObject({ verdict: 'faster' });
  });

  it('ships the fastest form that is faster than FP32, and FP32 when none is', () => {
    const measured = (form: Int8Form, latencyRatio: number, verdict: 'faster' | 'not-faster') => ({
      form,
      latencyRatio,
      verdict,
      sizeBytes: 10,
      sizeRatio: 0.3,
      batch: 1,
      threads: 2,
      fp32Ms: 1,
      int8Ms: latencyRatio,
      wins: 10,
      runs: 20,
    });
    const none = pickFastest([
      measured('static', 1.08, 'not-faster'),
      measured('dynamic', 0.99, 'not-faster'),
    ]);
    expect(none.chosen).toBe('fp32');
    expect(none.best.form).toBe('dynamic'); // what is reported: the fastest measured
    // A low median that did not win most pairs is not faster: it is not chosen over a real win.
    const some = pickFastest([
      measured('static', 0.5, 'not-faster'),
      measured('dynamic', 0.8, 'faster'),
      measured('matmul-only', 0.7, 'faster'),
    ]);
    expect(some).toMatchObject({ chosen: 'matmul-only', best: { latencyRatio: 0.7 } });
  });

  it('offers MatMul-only (and dynamic) INT8 only when weight MatMuls hold most of the compute weights', () => {
    const mlp = outlierChannelModel(randn);
    expect(matmulWeightShare(mlp)).toBe(1);
    expect(matmulOnlyExclusions(mlp)).toEqual(['relu1']);
    // A CNN whose only MatMul is its head: the "MatMul-only" form would be the float model.
    const cnn = makeModel(
      [
        makeNode('Conv', ['x', 'wc'], ['c'], [], 'conv'),
        makeNode('Flatten', ['c'], ['f'], [], 'flatten'),
        makeNode('Gemm', ['f', 'wg'], ['y'], [], 'head'),
      ],
      [floatInput('x', ['N', 32, 4, 4])],
      [floatInput('y', ['N', 2])],
      {
        opset: 13,
        initializers: [
          floatTensor('wc', [64, 32, 1, 1], randn(64 * 32)),
          floatTensor('wg', [1024, 2], randn(2048)),
        ],
      },
    );
    expect(matmulWeightShare(cnn)).toBeCloseTo(2048 / (2048 + 2048), 6);
    expect(matmulOnlyExclusions(cnn)).toEqual(['conv', 'flatten']);
    cnn.graph.initializer![0] = floatTensor('wc', [128, 32, 1, 1], randn(128 * 32));
    expect(matmulWeightShare(cnn)).toBeCloseTo(2048 / (2048 + 4096), 6);
    expect(matmulOnlyExclusions(cnn)).toBeUndefined();
  });

  it('feeds the whole model at the measured batch, repeating calibration rows', () => {
    const bytes = encodeModel(outlierChannelModel(randn));
    const sample = { x: Float32Array.from({ length: 3 * 16 }, (_, i) => i), count: 3, sampleShape: [16] };
    const feeds = benchmarkFeeds(bytes, 7, sample);
    expect(feeds.x.dims).toEqual([7, 16]);
    const x = feeds.x.data as Float32Array;
    expect(x[3 * 16]).toBe(0); // row 3 is row 0 again
    expect(x[16 + 5]).toBe(21);
    expect(benchmarkFeeds(bytes, 2).x.dims).toEqual([2, 16]);
  });

  it('says plainly when the quantized model is not faster', () => {
    const outcome = {
      batch: 32,
      threads: 2,
      fp32Ms: 10,
      int8Ms: 11,
      latencyRatio: 1.1,
      wins: 3,
      runs: 20,
      verdict: 'not-faster' as const,
      sizeRatio: 0.5,
    };
    expect(speedLine(outcome, 'INT8')).toMatch(
      /INT8 is NOT faster than FP32.*×1\.10 at batch 32.*keep the FP32 model/,
    );
    expect(speedLine(outcome, 'INT8')).not.toMatch(/paired runs/);
    expect(speedLine({ ...outcome, latencyRatio: 0.6, int8Ms: 6, verdict: 'faster' }, 'INT8')).toMatch(
      /×0\.60 at batch 32.*faster on this machine/,
    );
    // Quicker on average, but not in enough paired runs (a loaded machine): it says why.
    expect(
      speedLine(
        { ...outcome, latencyRatio: 0.6, int8Ms: 6, wins: 10, runs: 15, verdict: 'not-faster' },
        'INT8',
      ),
    ).toMatch(/INT8 is NOT faster .*×0\.60 .*won only 10 of 15 paired runs.*keep the FP32 model/);
  });

  it('`quantize --json --profile jetson-orin-nano --batch 4`: one object with the verdict, symmetric S8S8, no x86 tuning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetml-verdict-'));
    await saveModel(outlierChannelModel(randn), join(dir, 'm.onnx'));
    await writeNpy(join(dir, 'cal.npy'), randn(32 * 16), [32, 16]);
    const out = join(dir, 'q.onnx');
    const { stdout } = await promisify(execFile)('node', [
      'bin/fleetml.mjs',
      'quantize',
      join(dir, 'm.onnx'),
      '-o',
      out,
      '--calibration',
      join(dir, 'cal.npy'),
      '--profile',
      'jetson-orin-nano',
      '--batch',
      '4',
      '--json',
    ]);
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({
      target: 'jetson-orin-nano',
      batch: 4,
      activations: 'int8',
      tuned: false,
      // Not this machine's kernels: the rules' static INT8 is written whatever x86 measured.
      decisions: 'rules',
      chosen: 'static',
    });
    expect(summary.candidates.map((c: { form: string }) => c.form)).toEqual(['static']);
    expect(summary.sizeRatio).toBeGreaterThan(0);
    expect(summary.sizeRatio).toBeLessThan(1);
    expect(summary.latencyRatio).toBeCloseTo(summary.int8Ms / summary.fp32Ms, 6);
    expect(['faster', 'not-faster']).toContain(summary.verdict);
    if (summary.verdict === 'faster') expect(summary.latencyRatio).toBeLessThan(0.97);
    // TensorRT's rule: every activation zero point is an int8 0.
    const q = decodeModel(readFileSync(out));
    const qdq = q.graph.node.filter((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear');
    const zeroNames = new Set(qdq.map((n) => n.input[2]).filter(Boolean));
    const zeroPoints = (q.graph.initializer ?? []).filter((t) => zeroNames.has(t.name!));
    expect(zeroPoints.length).toBeGreaterThan(0);
    for (const z of zeroPoints) {
      expect(z.dataType === DataType.INT8 || z.dataType === DataType.INT32).toBe(true);
      expect([...tensorValues(z)].every((v) => Number(v) === 0)).toBe(true);
    }
  });
});
