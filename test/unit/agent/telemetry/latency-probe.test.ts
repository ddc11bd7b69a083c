import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatencyProbe } from '../../../../agent/telemetry/latency-probe.js';
import { createLogger } from '../../../../shared/logger.js';
import { buildMlp } from '../../../integration/agent/fixtures.js';

describe('latency probe', () => {
  let dir: string;
  let a: string;
  let b: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-probe-'));
    a = join(dir, 'a.onnx');
    b = join(dir, 'b.onnx');
    await writeFile(a, buildMlp({ seed: 1 }));
    await writeFile(b, buildMlp({ inputs: 64, seed: 2 }));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const make = (runs: number, active: () => { sha256: string; path: string } | null) =>
    new LatencyProbe({
      runs,
      budgetMs: 5000,
      dynamicDim: 1,
      ep: 'cpu',
      profile: {},
      activeModel: active,
      logger: createLogger({ name: 't', level: 'silent' }),
    });

  it('times N fresh runs of the active model per sample, following model changes', async () => {
    let active: { sha256: string; path: string } | null = null;
    const probe = make(7, () => active);
    expect(await probe.measure()).toBeNull();
    active = { sha256: 'a', path: a };
    const first = await probe.measure();
    const second = await probe.measure();
    expect(first?.count).toBe(7);
    expect(second?.count).toBe(7);
    expect(first!.p50Ms).toBeGreaterThan(0);
    expect(first!.p50Ms).toBeLessThanOrEqual(first!.p99Ms);
    // Fresh numbers every time, not the same benchmark repeated.
    expect(first).not.toEqual(second);
    active = { sha256: 'b', path: b };
    expect((await probe.measure())?.count).toBe(7);
    active = { sha256: 'broken', path: join(dir, 'missing.onnx') };
    expect(await probe.measure()).toBeNull();
    await probe.release();
  });

  it('reports nothing when disabled', async () => {
    const probe = make(0, () => ({ sha256: 'a', path: a }));
    expect(await probe.measure()).toBeNull();
  });
});
