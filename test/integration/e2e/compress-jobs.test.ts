import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudHandle } from '../../../cloud/main.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';
import { waitFor } from './fleet-harness.js';

const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);

// Compression as a cloud job: a child process per job, progress and results in SQLite, the
// variants registered as models of the original, and the HTTP server responsive meanwhile.
describe('compression jobs', () => {
  let test: TestCloud;
  let cloud: CloudHandle;
  let api: TestCloud['api'];
  let modelId: string;

  beforeAll(async () => {
    test = await startTestCloud();
    cloud = test.cloud;
    api = test.api;
    modelId = (await cloud.services.models.add(await readFile(SAMPLE), { name: 'mnist-mlp' })).id;
  });
  afterAll(async () => test?.stop());

  it('runs a job to completion and registers every variant', async () => {
    const start = await api('POST', '/api/jobs', {
      model: modelId,
      profile: 'x86-vnni',
      data: 'mnist',
      epochs: 2,
    });
    expect(start.status).toBe(201);
    const healthTimes: number[] = [];
    const job = await waitFor(
      'job to finish',
      async () => {
        const t0 = performance.now();
        await api('GET', '/api/health');
        healthTimes.push(performance.now() - t0);
        const j = (await api('GET', `/api/jobs/${start.body.id}`)).body;
        // On PostgreSQL a job is 'queued' until a replica's poll claims it: wait for an end state.
        return ['succeeded', 'failed', 'canceled'].includes(j.status) ? j : undefined;
      },
      120_000,
    );
    expect(job.error).toBeNull();
    expect(job.status).toBe('succeeded');
    expect(job.result.variants.map((v: any) => v.name)).toEqual([
      'original',
      'int8',
      'student',
      'student-int8',
    ]);
    const int8 = job.result.variants.find((v: any) => v.name === 'int8');
    expect(int8.sizeRatio).toBeLessThan(0.35);
    expect(int8.accuracy).toBeGreaterThan(85);
    // Measured against the original on this machine; a not-faster variant is never recommended.
    expect(['faster', 'not-faster']).toContain(int8.verdict);
    expect(job.result.int8Decisions).toBe('measured');
    const recommended = job.result.variants.find((v: any) => v.name === job.result.recommended);
    if (recommended && recommended.name !== 'original') expect(recommended.verdict).toBe('faster');
    const models = await cloud.services.models.list();
    const derived = models.filter((m) => m.sourceModelId === modelId);
    expect(derived.map((m) => m.variant).sort()).toEqual([
      'int8@x86-vnni',
      'student-int8@x86-vnni',
      'student@x86-vnni',
    ]);
    // The server stayed responsive while the job trained in its own process.
    healthTimes.sort((a, b) => a - b);
    expect(healthTimes[Math.floor(healthTimes.length / 2)]).toBeLessThan(250);
  });

  it('cancels a running job', async () => {
    const start = await api('POST', '/api/jobs', {
      model: modelId,
      profile: 'rpi4',
      data: 'mnist',
      epochs: 50,
    });
    const cancel = await api('POST', `/api/jobs/${start.body.id}/cancel`);
    expect(cancel.body.status).toBe('canceled');
    await new Promise((r) => setTimeout(r, 500));
    expect((await api('GET', `/api/jobs/${start.body.id}`)).body.status).toBe('canceled');
  });

  it('refuses unknown profiles and datasets with coded errors', async () => {
    const bad = await api('POST', '/api/jobs', { model: modelId, profile: 'toaster', data: 'mnist' });
    expect(bad.status).toBe(404);
    const missing = await api('POST', '/api/jobs', { model: modelId, profile: 'rpi4', data: 'f'.repeat(64) });
    expect(missing.body.error.code).toBe('NOT_FOUND');
  });
});
