import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchmarkModel, randomFeeds } from '../../../../agent/bench/benchmark.js';
import { createSession } from '../../../../agent/runtime/ort.js';
import { buildMlp } from '../../../integration/agent/fixtures.js';

const ROOT = resolve(import.meta.dirname, '../../../..');

describe('on-device benchmark', () => {
  let dir: string;
  let modelPath: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-bench-'));
    modelPath = join(dir, 'mlp.onnx');
    await writeFile(modelPath, buildMlp({ inputs: 16, outputs: 4 }));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('fills dynamic dims from the option or 1', async () => {
    const session = await createSession(modelPath);
    expect(randomFeeds(session).x.dims).toEqual([1, 16]);
    expect(randomFeeds(session, { dynamicDim: 8 }).x.dims).toEqual([8, 16]);
    expect(randomFeeds(session, { shape: [4, 16] }).x.dims).toEqual([4, 16]);
    await session.release();
  });

  it('runs at the serving shape, and names the symbolic dims only the last resort filled', async () => {
    const served = await benchmarkModel(
      modelPath,
      { ep: 'cpu' },
      { runs: 3, warmupRuns: 0, servingShapes: { x: [4, 16] } },
    );
    expect(served.inputShapes).toEqual({ x: [4, 16] });
    expect(served.unresolvedDims).toEqual([]);
    const guessed = await benchmarkModel(modelPath, { ep: 'cpu' }, { runs: 3, warmupRuns: 0 });
    expect(guessed.inputShapes).toEqual({ x: [1, 16] });
    expect(guessed.unresolvedDims).toEqual([expect.stringMatching(/^x:/)]);
  });

  it('measures ordered percentiles, throughput and load time', async () => {
    const r = await benchmarkModel(modelPath, { ep: 'cpu' }, { runs: 30, warmupRuns: 3 });
    expect(r.runs).toBe(30);
    expect(r.p50Ms).toBeGreaterThan(0);
    expect(r.p50Ms).toBeLessThanOrEqual(r.p90Ms);
    expect(r.p90Ms).toBeLessThanOrEqual(r.p99Ms);
    expect(r.p99Ms).toBeLessThanOrEqual(r.maxMs);
    expect(r.throughput).toBeGreaterThan(0);
    expect(r.loadMs).toBeGreaterThan(0);
    expect(r.peakRssBytes).toBeGreaterThan(10 * 1024 * 1024);
  });

  it('gives a coded error for a file that is not a model', async () => {
    await writeFile(join(dir, 'bad.onnx'), 'not a model');
    await expect(benchmarkModel(join(dir, 'bad.onnx'), { ep: 'cpu' })).rejects.toMatchObject({
      code: 'RUNTIME_LOAD',
    });
  });

  it('`fleetml bench --json` prints one object with the documented keys', async () => {
    const { stdout } = await promisify(execFile)(
      'node',
      [
        join(ROOT, 'bin/fleetml.mjs'),
        'bench',
        modelPath,
        '--runs',
        '5',
        '--warmup',
        '1',
        '--shape',
        '2,16',
        '--json',
      ],
      { cwd: ROOT },
    );
    const out = JSON.parse(stdout);
    for (const key of ['p50Ms', 'p90Ms', 'p99Ms', 'maxMs', 'throughput', 'loadMs', 'peakRssBytes', 'ep']) {
      expect(out).toHaveProperty(key);
    }
    expect(out.ep).toBe('cpu');
    expect(out).toHaveProperty('throttled', false);
    expect(out.runs).toBe(5);
    // --threads defaults to 0: one intra-op thread per core, not onnxruntime's own pick.
    expect(out.threads).toBe(availableParallelism());
  });

  it('`fleetml bench --budget --threads`: the budget stops the timed runs; the threads are used', async () => {
    const { stdout } = await promisify(execFile)(
      'node',
      [
        join(ROOT, 'bin/fleetml.mjs'),
        'bench',
        modelPath,
        ...['--runs', '10000000', '--warmup', '0'],
        ...['--budget', '1', '--threads', '1', '--json'],
      ],
      { cwd: ROOT },
    );
    const out = JSON.parse(stdout);
    // Ten million runs of even this tiny model take minutes; a 1 ms budget ends them at once.
    expect(out.runs).toBeGreaterThanOrEqual(1);
    expect(out.runs).toBeLessThan(10_000_000);
    expect(out.threads).toBe(1);
    const bad = await promisify(execFile)(
      'node',
      [join(ROOT, 'bin/fleetml.mjs'), 'bench', modelPath, '--budget', '0'],
      {
        cwd: ROOT,
      },
    ).then(
      () => 'accepted',
      (e: { stderr: string }) => e.stderr,
    );
    expect(bad).toMatch(/^error INPUT_INVALID: --budget must be an integer >= 1/m);
  });

  it('`fleetml bench a b --json` compares models side by side with ratios against the first', async () => {
    const small = join(dir, 'small.onnx');
    await writeFile(small, buildMlp({ inputs: 16, hidden: 8, outputs: 4, seed: 3 }));
    const { stdout } = await promisify(execFile)(
      'node',
      [join(ROOT, 'bin/fleetml.mjs'), 'bench', modelPath, small, '--runs', '5', '--warmup', '1', '--json'],
      { cwd: ROOT },
    );
    const out = JSON.parse(stdout);
    expect(out.baseline).toBe(modelPath);
    expect(out.models.map((m: { path: string }) => m.path)).toEqual([modelPath, small]);
    expect(out.models[0].ratios).toEqual({ size: 1, p50: 1, p99: 1, throughput: 1, load: 1 });
    const [a, b] = out.models;
    expect(b.ratios.size).toBeCloseTo(b.sizeBytes / a.sizeBytes, 2);
    expect(b.ratios.p50).toBeCloseTo(b.p50Ms / a.p50Ms, 2);
    expect(b.ratios.size).toBeLessThan(1);
  });
});
