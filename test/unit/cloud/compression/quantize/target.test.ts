import { describe, expect, it } from 'vitest';
import { floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { ort, runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { floatTensor, tensorValues } from '../../../../../cloud/compression/onnx/tensor.js';
import { DataType, type ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { quantizeDynamic } from '../../../../../cloud/compression/quantize/dynamic.js';
import { buildQdq, calibrateModel } from '../../../../../cloud/compression/quantize/static.js';
import {
  type CpuFacts,
  hostProfile,
  parseCpuinfo,
  resolveReduceRange,
} from '../../../../../cloud/compression/quantize/target.js';
import { normalSampler, outlierChannelModel } from './outlier-model.js';

const EPYC = `processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2
`;
const XEON = `processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8375C
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_vnni
`;
const ALDER = 'model name\t: 12th Gen Intel(R) Core(TM) i7-1260P\nflags\t\t: avx avx2 avx_vnni\n';
const PI5 = 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 asimddp\nCPU part\t: 0xd0b\n';

const facts = (arch: string, text: string): CpuFacts => ({ arch, gpu: null, ...parseCpuinfo(text) });

/** Largest |q| of the int8 weights of a model's integer initializers. */
function largestInt8Weight(model: ModelProto): number {
  let m = 0;
  for (const t of model.graph.initializer ?? []) {
    if (t.dataType !== DataType.INT8 || (t.dims ?? []).length < 2) continue;
    for (const v of tensorValues(t) as Int8Array) m = Math.max(m, Math.abs(v));
  }
  return m;
}

describe('INT8 target CPU', () => {
  it('reads /proc/cpuinfo flags and picks 7-bit weights only on x86 without VNNI', () => {
    expect(parseCpuinfo(EPYC).cpuModel).toBe('AMD EPYC 7B13');
    expect(parseCpuinfo(EPYC).cpuFlags).toContain('avx2');
    expect(hostProfile(facts('x64', EPYC))?.name).toBe('x86-avx2');
    expect(resolveReduceRange('host', facts('x64', EPYC))).toBe(true);
    expect(hostProfile(facts('x64', XEON))?.name).toBe('x86-vnni');
    expect(resolveReduceRange('host', facts('x64', XEON))).toBe(false);
    expect(resolveReduceRange('host', facts('x64', ALDER))).toBe(false);
    expect(parseCpuinfo(PI5).cpuFlags).toContain('asimddp');
    expect(resolveReduceRange('host', facts('arm64', PI5))).toBe(false);
    // An explicit choice wins over the host.
    expect(resolveReduceRange(false, facts('x64', EPYC))).toBe(false);
    expect(resolveReduceRange(true, facts('x64', XEON))).toBe(true);
  });

  it('static QDQ and dynamic INT8 write weights within ±63 with reduce range, ±127 without', async () => {
    const randn = normalSampler(5);
    const data = { x: randn(32 * 16), count: 32, sampleShape: [16] };
    const calibrated = await calibrateModel(outlierChannelModel(randn), data, { equalize: false });
    expect(largestInt8Weight(buildQdq(calibrated, { reduceRange: true }).model)).toBe(63);
    expect(largestInt8Weight(buildQdq(calibrated, { reduceRange: false }).model)).toBe(127);
    const model = outlierChannelModel(randn);
    expect(largestInt8Weight((await quantizeDynamic(model, { reduceRange: true })).model)).toBe(63);
    expect(largestInt8Weight((await quantizeDynamic(model, { reduceRange: false })).model)).toBe(127);
  });

  it('with reduce range, dynamic INT8 stays within 8-bit error on any x86 CPU (no int16 saturation)', async () => {
    // Non-negative activations near the top of their range against full-scale weights: the
    // pair sums that vpmaddubsw saturates without VNNI.
    const randn = normalSampler(8);
    const weights = Float32Array.from(
      randn(64 * 16),
      (v) => Math.sign(v) * (0.8 + 0.2 * Math.min(1, Math.abs(v))),
    );
    const model = makeModel(
      [makeNode('MatMul', ['x', 'w'], ['y'], [], 'fc')],
      [floatInput('x', ['N', 64])],
      [floatInput('y', ['N', 16])],
      { opset: 13, initializers: [floatTensor('w', [64, 16], weights)] },
    );
    const q = await quantizeDynamic(model, { reduceRange: true });
    const x = new ort.Tensor(
      'float32',
      Float32Array.from(randn(32 * 64), (v) => 2 + Math.abs(v)),
      [32, 64],
    );
    const ref = (await runOnce(model, { x })).y.data as Float32Array;
    const got = (await runOnce(q.model, { x })).y.data as Float32Array;
    let err = 0;
    for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(ref[i] - got[i]));
    expect(err / Math.max(...ref.map(Math.abs))).toBeLessThan(0.03);
  });
});
