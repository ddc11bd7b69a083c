import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createCanvas, GlobalFonts } from '@napi-rs/canvas';
import { createRng } from '../../../shared/random.js';

/**
 * Single lines of printed text for OCR recognisers, rendered with real fonts (DejaVu, from the
 * `dejavu-fonts-ttf` package) by Skia (`@napi-rs/canvas`): what a recogniser reads in the field,
 * where handwritten digits (text-lines.ts) leave PaddleOCR's printed-text recogniser unsure of
 * most lines. Words, numbers, amounts, dates and codes on light, slightly noisy, tinted paper,
 * deterministic from a seed; normalised as PaddleOCR's recogniser expects, (v − 0.5) / 0.5.
 * For benchmarks and tests (both packages are development dependencies).
 */
export interface PrintedLineOptions {
  /** Line height in pixels; default 48 (PaddleOCR's recogniser). */
  height: number;
  /** Line width in pixels; default 320 (PP-OCRv4's recogniser input). */
  width: number;
  /** Number of lines; default 8. */
  count: number;
  /** Seed of the texts and layouts; default 1. */
  seed: number;
  /** Fewest characters per line, and the most before the last token (a full line is cut); default [3, 16]. */
  length: [number, number];
  /**
   * Lines as PaddleOCR's pipeline hands them to the recogniser: the paper ends a few pixels after
   * the text (the detector's box, unclipped) and the rest of the width is padded with 0 after
   * normalisation (its resize_norm_img), rather than blank paper to the right edge. Default false.
   */
  crop: boolean;
}

export const PRINTED_LINES: PrintedLineOptions = {
  height: 48,
  width: 320,
  count: 8,
  seed: 1,
  length: [3, 16],
  crop: false,
};

/** Faces the lines are set in: sans, serif, mono and condensed, regular and bold. */
const FACES = [
  'DejaVuSans',
  'DejaVuSans-Bold',
  'DejaVuSerif',
  'DejaVuSerif-Bold',
  'DejaVuSansMono',
  'DejaVuSansCondensed',
  'DejaVuSerifCondensed',
];
// Common words of receipts, labels, forms and signs: real text has context that decides between
// glyphs alike (l and I, 0 and O); random letters would make a target no reader can be sure of.
const WORDS = (
  'the and for with from order total amount date time price item name number page room ' +
  'street road city phone email account balance paid due cash card change tax net gross ' +
  'invoice receipt ticket station platform gate exit entrance floor level open closed ' +
  'monday tuesday friday sunday january march june october december model serial batch ' +
  'weight height width length size color black white red blue green speed limit stop ' +
  'parking only daily hours service customer store market coffee water milk bread sugar ' +
  'apple orange rice chicken salad tea juice small large medium quantity unit each free ' +
  'sale new old north south east west main central park bank hotel school office center'
).split(' ');
const PUNCTUATION = ',.:;';
const digits = (n: number, rng: () => number) =>
  Array.from({ length: n }, () => Math.floor(rng() * 10)).join('');
const pad = (v: number) => String(v).padStart(2, '0');

/** One token: a word (lower, Capitalised or UPPER), a number, an amount, a date, a time or a code. */
function token(rng: () => number): string {
  const word = WORDS[Math.floor(rng() * WORDS.length)];
  const kind = rng();
  if (kind < 0.4) return word;
  if (kind < 0.58) return word[0].toUpperCase() + word.slice(1);
  if (kind < 0.63) return word.toUpperCase();
  if (kind < 0.78) return digits(1 + Math.floor(rng() * 5), rng);
  if (kind < 0.86) return `${digits(1 + Math.floor(rng() * 3), rng)}.${digits(2, rng)}`;
  if (kind < 0.91)
    return `${pad(1 + Math.floor(rng() * 28))}/${pad(1 + Math.floor(rng() * 12))}/20${digits(2, rng)}`;
  if (kind < 0.95) return `${pad(Math.floor(rng() * 24))}:${pad(Math.floor(rng() * 60))}`;
  const letters = String.fromCharCode(65 + Math.floor(rng() * 26), 65 + Math.floor(rng() * 26));
  return `${letters}-${digits(3 + Math.floor(rng() * 3), rng)}`;
}

let registered = false;
function registerFonts(): void {
  if (registered) return;
  const require = createRequire(import.meta.url);
  const ttf = join(dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
  for (const face of FACES) GlobalFonts.registerFromPath(join(ttf, `${face}.ttf`), face);
  registered = true;
}

/** Lines as one Float32Array [count, 3, height, width] and the text each one shows. */
export function printedLines(options: Partial<PrintedLineOptions> = {}): {
  lines: Float32Array;
  texts: string[];
} {
  registerFonts();
  const o = { ...PRINTED_LINES, ...options };
  const { height: H, width: W } = o;
  const rng = createRng(o.seed);
  const canvas = createCanvas(W, H);
  const g = canvas.getContext('2d');
  const lines = new Float32Array(o.count * 3 * H * W);
  const texts: string[] = [];
  for (let n = 0; n < o.count; n++) {
    const size = Math.round(H * (0.45 + 0.25 * rng()));
    g.font = `${size}px ${FACES[Math.floor(rng() * FACES.length)]}`;
    const x = 2 + Math.round(rng() * 10);
    const text = fitting(randomText(o.length, rng), (t) => x + g.measureText(t).width <= W - 2);
    texts.push(text);
    g.fillStyle = 'white';
    g.fillRect(0, 0, W, H);
    g.fillStyle = 'black';
    g.textBaseline = 'middle';
    g.fillText(text, x, H / 2 + Math.round((rng() - 0.5) * 6));
    const rgba = g.getImageData(0, 0, W, H).data;
    const paper = 0.8 + 0.17 * rng();
    const ink = 0.05 + 0.25 * rng();
    const tint = [rng() * 0.06, rng() * 0.06, rng() * 0.06];
    // Drawn only when cropping: a seed gives the same uncropped lines as before the option existed.
    const paperEnd = o.crop
      ? Math.min(W, Math.ceil(x + g.measureText(text).width) + 2 + Math.round(rng() * 6))
      : W;
    for (let i = 0; i < H * W; i++) {
      if (i % W >= paperEnd) continue; // 0: PaddleOCR's padding (the array starts zeroed)
      const coverage = 1 - rgba[i * 4] / 255;
      const gray = paper * (1 - coverage) + ink * coverage + (rng() - 0.5) * 0.04;
      for (let c = 0; c < 3; c++)
        lines[(n * 3 + c) * H * W + i] = (Math.min(1, Math.max(0, gray + tint[c])) - 0.5) / 0.5;
    }
  }
  return { lines, texts };
}

/** Tokens separated by spaces, some followed by punctuation, until the line is long enough. */
function randomText([fewest, most]: [number, number], rng: () => number): string {
  const wanted = fewest + Math.floor(rng() * (most - fewest + 1));
  let text = token(rng);
  while (text.length < wanted) {
    if (rng() < 0.15) text += PUNCTUATION[Math.floor(rng() * PUNCTUATION.length)];
    text += ` ${token(rng)}`;
  }
  return text;
}

/** The longest prefix of `text` that fits (a line is cut, not squeezed), at least one character. */
function fitting(text: string, fits: (t: string) => boolean): string {
  let end = text.length;
  while (end > 1 && !fits(text.slice(0, end))) end--;
  return text.slice(0, end).trim();
}
