import { describe, expect, it } from 'vitest';
import { textLines } from '../../../../cloud/compression/data/text-lines.js';

const H = 48;
const W = 320;

/** Columns of line `n` (first channel) holding ink: pixels darker than 0.5 before normalisation. */
function inkColumns(x: Float32Array, n: number): number[] {
  const columns: number[] = [];
  for (let c = 0; c < W; c++) {
    let ink = false;
    for (let r = 0; r < H; r++) if (x[n * 3 * H * W + r * W + c] * 0.5 + 0.5 < 0.5) ink = true;
    if (ink) columns.push(c);
  }
  return columns;
}

describe('textLines (rendered lines for OCR recognisers)', () => {
  it('gives [count, 3, 48, 320] lines normalised to [-1, 1], the same for the same seed', () => {
    const a = textLines({ count: 3, seed: 5 });
    expect(a).toHaveLength(3 * 3 * H * W);
    expect(a.every((v) => v >= -1 && v <= 1)).toBe(true);
    expect(textLines({ count: 3, seed: 5 })).toEqual(a);
    expect(textLines({ count: 3, seed: 6 })).not.toEqual(a);
  });

  it('draws a row of dark glyphs whose extent grows with the number of characters', () => {
    const short = textLines({ count: 4, seed: 2, length: [1, 1] });
    const long = textLines({ count: 4, seed: 2, length: [9, 9] });
    for (let n = 0; n < 4; n++) {
      const s = inkColumns(short, n);
      const l = inkColumns(long, n);
      expect(s.length).toBeGreaterThan(5);
      expect(l.length).toBeGreaterThan(3 * s.length);
    }
  });

  it('draws on the MNIST digits it is given: disjoint ranges give different glyphs', () => {
    const a = textLines({ count: 2, seed: 9, digits: [0, 1] });
    const b = textLines({ count: 2, seed: 9, digits: [1, 2] });
    expect(a).not.toEqual(b);
  });
});
