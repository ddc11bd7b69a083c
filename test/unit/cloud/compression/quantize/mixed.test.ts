import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { writeNpy } from '../../../../../cloud/compression/data/npy.js';
import { saveModel } from '../../../../../cloud/compression/onnx/io.js';
import { fillFloatGaps, floatGroup, quantizeMixed } from '../../../../../cloud/compression/quantize/mixed.js';
import {
  fakeQuantizeOne,
  plannedActivations,
  tensorSensitivity,
} from '../../../../../cloud/compression/quantize/sensitivity.js';
import { calibrateModel } from '../../../../../cloud/compression/quantize/static.js';
import { normalSampler, outlierChannelModel } from './outlier-model.js';

const randn = normalSampler(21);
const model = () => outlierChannelModel(randn);

describe('mixed precision by measured sensitivity', () => {
  it('ranks the tensor with the outlier channel first and keeps only it in float', async () => {
    const data = { x: randn(64 * 16), count: 64, sampleShape: [16] };
    const calibrated = await calibrateModel(model(), data, { equalize: false });
    const planned = plannedActivations(calibrated);
    // Input, fc1's output (absorbed Relu) and h2 get Q/DQ; the graph output y too.
    expect([...planned.keys()].sort()).toEqual(['r1', 'x', 'h2', 'y'].sort());
    const ranking = await tensorSensitivity(calibrated, {}, data, { probeSamples: 8 });
    expect(ranking.map((r) => r.tensor)).not.toContain('y');
    expect(ranking[0].tensor).toBe('h2');
    expect(ranking[0].error).toBeGreaterThan(10 * ranking[1].error);
    // A fake-quantized copy changes only that tensor's readers.
    const fq = fakeQuantizeOne(calibrated.model, 'h2', planned.get('h2')!);
    expect(fq.graph.node.find((n) => n.name === 'fc3')!.input[0]).not.toBe('h2');
    expect(calibrated.model.graph.node.find((n) => n.name === 'fc3')!.input[0]).toBe('h2');

    const evalSet = { x: randn(32 * 16), count: 32, sampleShape: [16] };
    const steps: [number, number][] = [];
    const result = await quantizeMixed(
      calibrated,
      {},
      evalSet,
      { minCosine: 0.999 },
      { sensitivity: ranking, onStep: (k, m) => steps.push([k, m.cosine]) },
    );
    expect(steps[0][0]).toBe(0);
    expect(steps[0][1]).toBeLessThan(0.999); // the budget is missed without float tensors
    expect(result.budgetMet).toBe(true);
    expect(result.metrics.cosine).toBeGreaterThanOrEqual(0.999);
    expect(result.floatTensors).toEqual(['h2']);
    expect(result.keptFloat.sort()).toEqual(floatGroup(calibrated, ['h2']).sort());
    expect(result.keptFloat.sort()).toEqual(['fc2', 'fc3']);

    // With the culprit ranked last, the first search needs every tensor; the refining round
    // moves the tensor that completed the budget to the front and finds it alone suffices.
    const promoted: string[] = [];
    const refined = await quantizeMixed(
      calibrated,
      {},
      evalSet,
      { minCosine: 0.999 },
      { sensitivity: [...ranking.slice(1), ranking[0]], onRefine: (_, t) => promoted.push(t) },
    );
    expect(promoted[0]).toBe('h2');
    expect(refined.budgetMet).toBe(true);
    expect(refined.floatTensors).toEqual(['h2']);
    const unrefined = await quantizeMixed(
      calibrated,
      {},
      evalSet,
      { minCosine: 0.999 },
      { sensitivity: [...ranking.slice(1), ranking[0]], refineRounds: 0 },
    );
    expect(unrefined.floatTensors.length).toBe(ranking.length);
  });

  it('is what `quantize --min-cosine --search sensitivity` runs, reporting the float nodes as JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetml-mixed-'));
    await saveModel(model(), join(dir, 'm.onnx'));
    await writeNpy(join(dir, 'cal.npy'), randn(64 * 16), [64, 16]);
    await writeNpy(join(dir, 'data.npy'), randn(32 * 16), [32, 16]);
    const { stdout } = await promisify(execFile)('node', [
      'bin/fleetml.mjs',
      'quantize',
      join(dir, 'm.onnx'),
      '-o',
      join(dir, 'q.onnx'),
      '--calibration',
      join(dir, 'cal.npy'),
      '--data',
      join(dir, 'data.npy'),
      '--min-cosine',
      '0.999',
      '--search',
      'sensitivity',
      '--json',
    ]);
    const summary = JSON.parse(stdout);
    expect(summary.metrics.cosine).toBeGreaterThanOrEqual(0.999);
    expect(summary.keptFloat.sort()).toEqual(['fc2', 'fc3']);
  });

  it('fills float gaps: a node between float neighbours goes float, one at the graph edge does not', async () => {
    const data = { x: randn(8 * 16), count: 8, sampleShape: [16] };
    const calibrated = await calibrateModel(model(), data, { equalize: false });
    expect(fillFloatGaps(calibrated, ['fc1', 'fc2']).sort()).toEqual(['fc1', 'fc2', 'relu1']);
    expect(fillFloatGaps(calibrated, ['fc2'])).toEqual(['fc2']);
  });
});
