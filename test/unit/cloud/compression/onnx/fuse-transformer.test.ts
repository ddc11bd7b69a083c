import { describe, expect, it } from 'vitest';
import { cosine } from '../../../../../cloud/compression/evaluate/metrics.js';
import { opsetVersion } from '../../../../../cloud/compression/onnx/edit.js';
import { ort, runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { buildQdq, calibrateModel } from '../../../../../cloud/compression/quantize/static.js';
import { createRng, gaussian } from '../../../../../shared/random.js';
import { SMALL_TRANSFORMER, transformerClassifier } from '../../../../fixtures/transformer.js';

const rng = createRng(4);
const spec = { ...SMALL_TRANSFORMER, layers: 1, seq: 8, d: 32, ff: 64 };
const samples = (n: number) => Float32Array.from({ length: n * spec.seq * spec.d }, () => gaussian(rng));

describe('transformer fusion before quantization', () => {
  it('fuses decomposed LayerNorm and GELU (opset 14 → 17) so no Q/DQ lands inside them', async () => {
    const model = transformerClassifier(spec);
    const data = { x: samples(16), count: 16, sampleShape: [spec.seq, spec.d] };
    const calibrated = await calibrateModel(model, data);
    expect(calibrated.rewrites.layerNormsFused).toBe(3); // two per layer, one final
    expect(calibrated.rewrites.gelusFused).toBe(1);
    expect(opsetVersion(calibrated.model)).toBe(17);
    const ops = calibrated.model.graph.node.map((n) => n.opType);
    for (const gone of ['Pow', 'Sqrt', 'Erf', 'Div', 'Sub']) expect(ops).not.toContain(gone);
    // The fused float graph computes what the exported one does.
    const x = new ort.Tensor('float32', samples(4), [4, spec.seq, spec.d]);
    const a = (await runOnce(model, { x })).logits.data as Float32Array;
    const b = (await runOnce(calibrated.model, { x })).logits.data as Float32Array;
    expect(cosine(a, b)).toBeGreaterThan(0.99999);
    // Quantized, the normalisation stays one float op: LayerNormalization reads a DQ, no Q/DQ inside.
    const q = buildQdq(calibrated);
    expect(q.floatOps.LayerNormalization).toBe(3);
    // Only the pooling mean over T is left of the ReduceMeans.
    expect(q.model.graph.node.filter((n) => n.opType === 'ReduceMean')).toHaveLength(1);
    const c = (await runOnce(q.model, { x })).logits.data as Float32Array;
    expect(cosine(a, c)).toBeGreaterThan(0.98);
  });

  it('leaves an opset-17 model and a non-matching pattern alone', async () => {
    const model = transformerClassifier({ ...spec, opset: 17 });
    const data = { x: samples(8), count: 8, sampleShape: [spec.seq, spec.d] };
    const calibrated = await calibrateModel(model, data, { fuseTransformer: true });
    expect(calibrated.rewrites.layerNormsFused).toBeUndefined();
    expect(calibrated.rewrites.gelusFused).toBe(1);
    const unfused = await calibrateModel(transformerClassifier(spec), data, { fuseTransformer: false });
    expect(unfused.model.graph.node.some((n) => n.opType === 'Pow')).toBe(true);
  });
});
