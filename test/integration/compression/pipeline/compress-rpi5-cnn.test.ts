import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMnistCnn } from '../../../../cloud/compression/data/reference-models.js';
import { saveModel } from '../../../../cloud/compression/onnx/io.js';
import { decodeModel } from '../../../../cloud/compression/onnx/proto.js';

// Issue 16, "How it is shown": `compress --profile rpi5` on a CNN sets a student shrunk from the
// teacher and distilled, INT8 and student-INT8 side by side, and marks what was measured on
// this (x86) build machine: the Pi's INT8 follows its rules, and the recommendation is
// provisional until devices of the profile report.
const BIN = resolve(import.meta.dirname, '../../../../bin/fleetml.mjs');

interface Row {
  name: string;
  status: string;
  latencyMs: number | null;
  sizeRatio: number | null;
  accuracy: number | null;
  int8Decision: unknown;
  file: string | null;
}

describe('fleetml compress --profile rpi5 on a CNN', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-rpi5-'));
    // A small CNN teacher (8/16 channels, one epoch on the 8,000 training digits).
    await saveModel(await buildMnistCnn({ channels: [8, 16], epochs: 1 }), join(dir, 'cnn.onnx'));
  }, 600_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reports the shrunk student, INT8 and student-INT8 side by side, rules and provisional basis marked', async () => {
    const out = join(dir, 'out');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        BIN,
        'compress',
        join(dir, 'cnn.onnx'),
        '--profile',
        'rpi5',
        '--data',
        'mnist',
        '--epochs',
        '1',
        '-o',
        out,
      ],
      { maxBuffer: 1 << 24 },
    );
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    expect(report).toMatchObject({
      profile: 'rpi5',
      int8Decisions: 'rules',
      recommendationBasis: 'provisional',
      complete: true,
    });
    expect(report.student).toBe('shrink:0.5');
    expect(report.measuredOn).toMatch(new RegExp(`^${process.arch} build machine`));
    const rows = report.variants as Row[];
    expect(rows.map((r) => r.name)).toEqual(['original', 'int8', 'student', 'student-int8']);
    for (const r of rows) {
      expect(r.status, r.name).toBe('ok');
      expect(r.latencyMs, r.name).toBeGreaterThan(0);
      expect(r.accuracy, r.name).toBeGreaterThan(50);
    }
    const row = (name: string) => rows.find((r) => r.name === name)!;
    expect(row('int8').int8Decision).toBe('rules');
    expect(row('student-int8').int8Decision).toBe('rules');
    expect(row('original').int8Decision).toBeNull();
    // The student is the teacher's own graph at half width: its first conv has 4 filters, not 8.
    const firstConv = async (file: string) => {
      const m = decodeModel(await readFile(file));
      const conv = m.graph.node.find((n) => n.opType === 'Conv')!;
      return m.graph.initializer!.find((t) => t.name === conv.input[1])!.dims![0];
    };
    expect(await firstConv(row('original').file!)).toBe(8);
    expect(await firstConv(row('student').file!)).toBe(4);
    expect(row('student').sizeRatio!).toBeLessThan(0.5);
    expect(row('student-int8').sizeRatio!).toBeLessThan(row('student').sizeRatio!);
    // The table says where it was measured and that the Pi's recommendation is provisional.
    expect(stdout).toMatch(/INT8 decisions for rpi5: rules/);
    expect(stdout).toMatch(/^int8 .*rules/m);
    if (report.recommended) expect(stdout).toMatch(/recommended for rpi5: \S+ \(provisional/);
  }, 900_000);
});
