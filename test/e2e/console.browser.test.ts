import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetHarness } from '../integration/e2e/fleet-harness.js';
import { CHROMIUM, launchChromium } from './chromium.js';

// The console in Debian's headless Chromium: start a deployment from the UI, watch the
// rollout finish live, and see the device's latency chart grow as telemetry arrives.
const SAMPLE = new URL('../../cloud/samples/mnist-mlp.onnx', import.meta.url);

describe.skipIf(!existsSync(CHROMIUM))('web console in a real browser', () => {
  let fleet: FleetHarness;
  let browser: Browser;
  beforeAll(async () => {
    fleet = await FleetHarness.start(1);
    await fleet.cloud.services.models.add(await readFile(SAMPLE), { name: 'browser-mnist' });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await fleet?.stop();
  });

  it('deploys from the fleet page and shows the latency chart updating', async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${fleet.cloud.httpUrl}/#token=${encodeURIComponent(fleet.cloud.adminToken)}`);
    const deviceId = fleet.deviceIds()[0];
    await page.waitForSelector(`tr[data-id="${deviceId}"]`);
    await page.check(`tr[data-id="${deviceId}"] input.pick`);
    await page.click('#deploy-button');
    await page.waitForURL(/#\/rollouts\/r-/);
    await page.waitForSelector('#rollout-status[data-status="succeeded"]', { timeout: 30_000 });

    await page.goto(`${fleet.cloud.httpUrl}/#/device/${encodeURIComponent(deviceId)}`);
    await page.waitForSelector('#latency-chart canvas');
    const points = async () => Number(await page.getAttribute('#latency-points', 'data-points'));
    const before = await points();
    // Telemetry every second: the page redraws on live events without a reload.
    await page.waitForFunction(
      `Number(document.querySelector('#latency-points')?.getAttribute('data-points')) > ${before}`,
      undefined,
      { timeout: 20_000 },
    );
    expect(await points()).toBeGreaterThan(before);
    expect(await page.textContent('#bench-p50')).toMatch(/^\d+\.\d+$/);
    expect(errors).toEqual([]);
  });
});
