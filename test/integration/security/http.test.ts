import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudHandle } from '../../../cloud/main.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';

describe('HTTP API security', () => {
  let test: TestCloud;
  let cloud: CloudHandle;

  beforeAll(async () => {
    test = await startTestCloud();
    cloud = test.cloud;
  });
  afterAll(async () => test?.stop());

  const call = (method: string, path: string, token?: string, body?: string) =>
    fetch(`${cloud.httpUrl}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body,
    });

  it('refuses every write route without a token, and with a viewer token', async () => {
    const routes = cloud.httpRoutes;
    const writes = routes.filter((r) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method));
    expect(writes.length).toBeGreaterThanOrEqual(6);
    const viewer = await cloud.services.tokens.createApiToken('v', 'viewer');
    for (const route of writes) {
      const path = route.url.replace(/:(\w+)/g, 'x');
      const anonymous = await call(route.method, path, undefined, '{}');
      expect([401, 429], `${route.method} ${route.url}`).toContain(anonymous.status);
      const weak = await call(route.method, path, viewer, '{}');
      expect(weak.status, `${route.method} ${route.url} as viewer`).toBe(403);
    }
  });

  it('lets operators deploy but keeps token management for admins', async () => {
    const operator = await cloud.services.tokens.createApiToken('o', 'operator');
    const tokenAttempt = await call(
      'POST',
      '/api/tokens',
      operator,
      JSON.stringify({ name: 'x', role: 'admin' }),
    );
    expect(tokenAttempt.status).toBe(403);
    const badDeploy = await call(
      'POST',
      '/api/deployments',
      operator,
      JSON.stringify({ model: 'nope', devices: ['x'] }),
    );
    expect(badDeploy.status).toBe(404);
  });

  it('validates bodies and limits their size', async () => {
    const admin = cloud.adminToken;
    const invalid = await call('POST', '/api/enroll-tokens', admin, JSON.stringify({ uses: 'many' }));
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { error: { code: string } }).error.code).toBe('INPUT_INVALID');
    const huge = await call(
      'POST',
      '/api/tokens',
      admin,
      JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024), role: 'admin' }),
    );
    expect(huge.status).toBe(413);
  });

  it('slows down token guessing', async () => {
    let limited = 0;
    for (let i = 0; i < 30; i++) {
      const response = await call('GET', '/api/devices', `fml_guess_${i}`);
      if (response.status === 429) limited++;
    }
    expect(limited).toBeGreaterThan(0);
    // The right token still works: whoever shares the address cannot lock the operator out.
    expect((await call('GET', '/api/devices', cloud.adminToken)).status).toBe(200);
  });
});

describe('uploads', () => {
  let test: TestCloud;

  beforeAll(async () => {
    test = await startTestCloud({ uploadLimits: { modelUploadBytes: 4096 } });
  });
  afterAll(async () => test?.stop());

  const upload = (token: string, body: Uint8Array) =>
    fetch(`${test.cloud.httpUrl}/api/models?name=x`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body,
    });

  it('streams an upload to disk under the configured limit and refuses a larger one with a coded 413', async () => {
    const tooLarge = await upload(test.cloud.adminToken, new Uint8Array(5000));
    expect(tooLarge.status).toBe(413);
    expect(((await tooLarge.json()) as { error: { code: string } }).error.code).toBe('UPLOAD_TOO_LARGE');
    const notOnnx = await upload(test.cloud.adminToken, new Uint8Array(100).fill(7));
    expect(notOnnx.status).toBe(400);
  });

  it('checks the role before reading the body', async () => {
    const viewer = await test.cloud.services.tokens.createApiToken('v', 'viewer');
    expect((await upload(viewer, new Uint8Array(5000))).status).toBe(403);
  });
});

describe('OpenAPI document', () => {
  let test: TestCloud;
  let cloud: CloudHandle;

  beforeAll(async () => {
    test = await startTestCloud();
    cloud = test.cloud;
  });
  afterAll(async () => test?.stop());

  it('documents every API route, with request schemas generated from the validators', async () => {
    const spec = (await (await fetch(`${cloud.httpUrl}/api/openapi.json`)).json()) as any;
    expect(spec.openapi).toBe('3.1.0');
    const documented = new Set(
      Object.entries(spec.paths).flatMap(([path, ops]) =>
        Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${path}`),
      ),
    );
    for (const route of cloud.httpRoutes.filter((r) => r.url.startsWith('/api/') && r.method !== 'HEAD')) {
      expect(documented, route.url).toContain(`${route.method} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
    }
    const rollout = spec.paths['/api/rollouts'].post;
    expect(rollout['x-fleetml-role']).toBe('operator');
    expect(rollout.requestBody.content['application/json'].schema.properties.model.type).toBe('string');
  });

  it('documents the fleet serving query with its role and every query parameter', async () => {
    const spec = (await (await fetch(`${cloud.httpUrl}/api/openapi.json`)).json()) as any;
    const serving = spec.paths['/api/fleet/serving'].get;
    expect(serving.summary).toMatch(/real-traffic latency/);
    expect(serving['x-fleetml-role']).toBe('viewer');
    const params = Object.fromEntries(serving.parameters.map((p: any) => [p.name, p]));
    expect(Object.keys(params).sort()).toEqual([
      'by',
      'device',
      'model',
      'profile',
      'release',
      'step',
      'window',
    ]);
    expect(params.by.in).toBe('query');
    expect(params.by.required).toBe(false);
    expect(params.by.schema.enum).toEqual(['fleet', 'device', 'model', 'release', 'profile']);
  });
});
