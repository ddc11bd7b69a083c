import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryMb, type SpawnedCloud, spawnCloud } from './support.js';

// Issue 12, findings 7 and 8 (HTTP side), against a real `fleetml cloud start` process.
const MB = 1024 * 1024;

/** POSTs `totalBytes` of zeros without a token; resolves with the status and how much was sent. */
function anonymousUpload(url: string, totalBytes: number): Promise<{ status: number; sentBytes: number }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(MB);
    let sent = 0;
    let status = 0;
    const request = http.request(`${url}/api/models?name=attack`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(totalBytes) },
    });
    const finish = () => resolve({ status, sentBytes: sent });
    request.on('response', (response) => {
      status = response.statusCode ?? 0;
      response.resume();
      response.on('end', () => {
        request.destroy();
        finish();
      });
    });
    request.on('error', (error) => (status ? finish() : reject(error)));
    const pump = () => {
      while (sent < totalBytes && !status) {
        sent += chunk.length;
        if (!request.write(chunk)) return void request.once('drain', pump);
      }
      if (!status) request.end();
    };
    pump();
  });
}

describe('attack: unauthenticated HTTP resource use and sign-in limits', () => {
  let cloud: SpawnedCloud;

  beforeAll(async () => {
    cloud = await spawnCloud(['--insecure-plain-mqtt']);
  }, 120_000);
  afterAll(async () => cloud?.stop());

  it('refuses a 400 MB upload without a token before reading it: cloud RSS stays under 300 MB', async () => {
    const before = await memoryMb(cloud.proc.pid);
    const outcome = await anonymousUpload(cloud.httpUrl, 400 * MB);
    const after = await memoryMb(cloud.proc.pid);
    expect(outcome.status).toBe(401);
    expect(
      after.peak,
      `peak RSS ${after.peak.toFixed(0)} MB (before ${before.rss.toFixed(0)} MB)`,
    ).toBeLessThan(300);
  }, 120_000);

  it('keeps the valid admin token working after failed sign-ins from the same address', async () => {
    const get = (path: string, token?: string) =>
      fetch(`${cloud.httpUrl}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await get('/api/devices', `fml_guess_${i}`)).status);
    expect(statuses).toContain(429);
    // /api/stream?token= goes through the same limiter.
    const stream = await fetch(`${cloud.httpUrl}/api/stream?token=fml_guess_stream`);
    expect(stream.status).toBe(429);
    expect((await get('/api/devices', cloud.token)).status).toBe(200);
  });

  it('serves only /api/health and /api/openapi.json without a token', async () => {
    for (const path of ['/api/health', '/api/openapi.json']) {
      expect((await fetch(`${cloud.httpUrl}${path}`)).status, path).toBe(200);
    }
    const spec = (await (await fetch(`${cloud.httpUrl}/api/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const paths = Object.keys(spec.paths).filter((p) => !['/api/health', '/api/openapi.json'].includes(p));
    expect(paths.length).toBeGreaterThan(20);
    for (const path of paths) {
      // A fresh address each time is not available on loopback, so the limiter may answer 429.
      const status = (await fetch(`${cloud.httpUrl}${path.replace(/\{\w+\}/g, 'x')}`)).status;
      expect([401, 429], path).toContain(status);
    }
  });
});
