import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudHandle, startCloud } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { waitFor } from './fleet-harness.js';

const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);

// Compression as a cloud job: a child process per job, progress and results in SQLite, the
// variants registered as models of the original, and the HTTP server responsive meanwhile.
describe('compression jobs', () => {
  let dir: string;
  let cloud: CloudHandle;
  let api: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;
  let modelId: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-jobs-'));
    cloud = await startCloud({
      dataDir: join(dir, 'c'),
      httpPort: 0,
      mqttPort: 0,
      logger: createLogger({ name: 't', level: 'silent' }),
    });
    api = async (method, path, body) => {
      const r = await fetch(`${cloud.httpUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${cloud.adminToken}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: r.status, body: await r.json() };
    };
    modelId = (await cloud.services.models.add(await readFile(SAMPLE), { name: 'mnist-mlp' })).id;
  });
  afterAll(async () => {
    await cloud?.stop();
    await rm(dir, { recursive: true, force: true });
  });

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
        return j.status !== 'running' ? j : undefined;
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
    const models = cloud.services.models.list();
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
