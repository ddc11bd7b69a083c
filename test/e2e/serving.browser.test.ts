import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../agent/config.js';
import { type AgentHandle, startAgent } from '../../agent/main.js';
import { createLogger } from '../../shared/logger.js';
import { FleetHarness, waitFor } from '../integration/e2e/fleet-harness.js';
import { CHROMIUM, launchChromium } from './chromium.js';

// The last metre end to end: a real agent serves its deployed model over the Open Inference
// Protocol, a test client calls it, the agent's telemetry carries the request sketches, and the
// fleet page in Debian's headless Chromium draws the fleet latency chart from them.
const SAMPLE = new URL('../../cloud/samples/mnist-mlp.onnx', import.meta.url);

describe.skipIf(!existsSync(CHROMIUM))('real-traffic latency in the console', () => {
  let fleet: FleetHarness;
  let agent: AgentHandle;
  let browser: Browser;
  beforeAll(async () => {
    fleet = await FleetHarness.start(0);
    const { token } = await fleet.cloud.services.tokens.createEnrollToken();
    agent = await startAgent({
      config: resolveConfig({
        cloudUrl: fleet.cloud.mqttUrl,
        enrollToken: token,
        dataDir: join(fleet.dir, 'serving-agent'),
        telemetryIntervalS: 1,
        benchRuns: 10,
        benchWarmupRuns: 1,
        servePort: 0,
      }),
      logger: createLogger({ name: 'test', level: 'silent' }),
    });
    fleet.agents.push(agent);
    browser = await launchChromium();
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await fleet?.stop();
  });

  it('a client calls the agent; the fleet page charts p50/p99 of those requests', async () => {
    const deviceId = agent.identity.deviceId;
    const model = await fleet.cloud.services.models.add(await readFile(SAMPLE), { name: 'shop-digits' });
    await fleet.cloud.services.targets.setModel(deviceId, model);
    const url = await waitFor(
      'the agent to serve the model',
      () => (agent.inference?.registry.get('shop-digits') ? agent.inference.url : null),
      60_000,
    );

    // The application: 200 good requests and 5 bad ones, over HTTP.
    const body = JSON.stringify({
      inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: new Array(784).fill(0.1) }],
    });
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${url}/v2/models/shop-digits/infer`, { method: 'POST', body });
      expect(res.status).toBe(200);
    }
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${url}/v2/models/shop-digits/infer`, {
        method: 'POST',
        body: '{"inputs":[]}',
      });
      expect(res.status).toBe(400);
    }
    await waitFor(
      'the sketches in the cloud',
      async () => {
        const [fleetWide] = await fleet.cloud.services.monitor.serving.summary(
          Date.now() - 3_600_000,
          Date.now() + 60_000,
          'fleet',
        );
        return fleetWide && fleetWide.requests === 205 ? fleetWide : null;
      },
      30_000,
    );

    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${fleet.cloud.httpUrl}/#token=${encodeURIComponent(fleet.cloud.adminToken)}`);
    await page.waitForSelector('#fleet-latency-chart canvas', { timeout: 30_000 });
    const info = page.locator('#fleet-latency-points');
    expect(Number(await info.getAttribute('data-points'))).toBeGreaterThan(0);
    expect(await info.getAttribute('data-source')).toBe('traffic');
    expect(Number(await info.getAttribute('data-requests'))).toBe(205);
    const rows = await page.textContent('#fleet-latency-groups');
    expect(rows).toContain(model.id);
    expect(rows).toContain('real traffic');
    expect(await page.textContent('#fleet-latency-spread')).toMatch(/ms\s*1/);

    // The device page shows the same traffic, its error rate, and the probe labelled as fallback.
    await page.goto(`${fleet.cloud.httpUrl}/#/device/${encodeURIComponent(deviceId)}`);
    await page.waitForSelector('#serving-chart canvas', { timeout: 30_000 });
    expect(await page.textContent('#serving-requests')).toBe('205');
    expect(Number(await page.textContent('#serving-errors'))).toBeCloseTo((5 / 205) * 100, 1);
    expect(await page.textContent('#serving-p50')).toMatch(/^\d+\.\d{3}$/);
    expect(await page.textContent('body')).toContain('Probe latency');
    expect(errors).toEqual([]);
  }, 180_000);
});
