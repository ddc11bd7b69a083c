import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, loadImageFolder } from '../../../../../cloud/compression/data/images.js';
import {
  DETECTOR_IMAGES,
  textImages,
  textImagesRgba,
} from '../../../../../cloud/compression/data/text-images.js';
import { loadTrainData } from '../../../../../cloud/compression/distill/data.js';
import { isFleetError } from '../../../../../shared/errors/index.js';

function solid(width: number, height: number, rgb: [number, number, number]): Buffer {
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([...rgb, 255], i * 4);
  return data;
}

describe('image folders as distillation data', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-images-'));
    const png = new PNG({ width: 8, height: 6 });
    solid(8, 6, [255, 0, 0]).copy(png.data);
    await writeFile(join(dir, 'a.png'), PNG.sync.write(png));
    const jpg = jpeg.encode({ width: 8, height: 6, data: solid(8, 6, [0, 0, 255]) }, 95);
    await writeFile(join(dir, 'b.jpg'), jpg.data);
    await writeFile(join(dir, 'notes.txt'), 'not an image');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('decodes PNG and JPEG, resizes, scales to [0, 1] and normalises per channel, in CHW order', async () => {
    const rgb = await loadImageFolder(dir, { width: 4, height: 2, channels: 3 });
    expect(rgb.files).toEqual(['a.png', 'b.jpg']);
    expect(rgb.sampleShape).toEqual([3, 2, 4]);
    const red = rgb.x.subarray(0, 24);
    expect([...red.subarray(0, 8)].every((v) => v === 1)).toBe(true);
    expect([...red.subarray(8, 24)].every((v) => v === 0)).toBe(true);
    const blue = rgb.x.subarray(24, 48);
    expect(blue[16]).toBeGreaterThan(0.95);
    expect(blue[0]).toBeLessThan(0.05);
    const grey = await loadImageFolder(dir, { width: 2, height: 2, channels: 1, mean: [0.5], std: [0.5] });
    expect(grey.x[0]).toBeCloseTo((1 / 3 - 0.5) / 0.5, 5);
  });

  it('a folder given as --data takes the teacher input size, and a broken image is a coded error', async () => {
    const { train } = await loadTrainData(dir, undefined, [1, 3, 4]);
    expect(train.count).toBe(2);
    expect(train.sampleShape).toEqual([1, 3, 4]);
    await writeFile(join(dir, 'c.png'), 'garbage');
    let error: unknown;
    try {
      await loadImageFolder(dir, { width: 2, height: 2, channels: 1 });
    } catch (e) {
      error = e;
    }
    expect(isFleetError(error) && error.code === 'INPUT_INVALID').toBe(true);
  });

  it('rendered text images written as PNG files load back as the same samples (within one 8-bit step)', async () => {
    const pages = join(dir, 'pages');
    await mkdir(pages);
    const size = { height: 40, width: 56, count: 2, seed: 9 };
    const images = textImagesRgba(size);
    await writeFile(join(pages, '0.png'), encodePng(images[0]));
    await writeFile(join(pages, '1.png'), encodePng(images[1]));
    const { mean, std } = DETECTOR_IMAGES;
    const loaded = await loadImageFolder(pages, { width: 56, height: 40, channels: 3, mean, std });
    const expected = textImages(size);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(loaded.x[i] - expected[i]));
    expect(worst).toBeLessThan(0.5 / 255 / Math.min(...std) + 1e-5);
    expect(worst).toBeGreaterThan(0); // 8-bit pixels, not the float samples themselves
  });
});
