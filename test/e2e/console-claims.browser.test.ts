import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetHarness } from '../integration/e2e/fleet-harness.js';
import { taggedSample } from '../support/models.js';
import { CHROMIUM, launchChromium } from './chromium.js';

// README "Console and API" and "Run a fleet", in Debian's headless Chromium against a real
// cloud and agent: the console link's token leaves the address bar and is kept; the device page
// lists the device's events; a model family shows its variants and the accuracy-vs-latency chart.

describe.skipIf(!existsSync(CHROMIUM))('console claims in a real browser', () => {
  let fleet: FleetHarness;
  let browser: Browser;

  beforeAll(async () => {
    fleet = await FleetHarness.start(1);
    browser = await launchChromium();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await fleet?.stop();
  });

  const signIn = async () => {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
    await page.goto(`${fleet.cloud.httpUrl}/#token=${encodeURIComponent(fleet.cloud.adminToken)}`);
    await page.waitForSelector('#devices');
    return page;
  };

  it('the console link signs in, drops the token from the address bar and keeps it', async () => {
    const page = await signIn();
    expect(page.url()).not.toContain('token=');
    expect(page.url()).not.toContain(fleet.cloud.adminToken);
    expect(await page.evaluate(`localStorage.getItem('fleetml.token')`)).toBe(fleet.cloud.adminToken);
    // A reload without the token in the address still signs in (no login dialog).
    await page.goto(`${fleet.cloud.httpUrl}/`);
    await page.waitForSelector(`tr[data-id="${fleet.deviceIds()[0]}"]`);
    expect(await page.evaluate(`document.getElementById('login').open`)).toBe(false);
    await page.close();
  });

  it("the device page lists the device's events (online first of all)", async () => {
    const page = await signIn();
    await page.evaluate(
      `location.hash = ${JSON.stringify(`#/device/${encodeURIComponent(fleet.deviceIds()[0])}`)}`,
    );
    await page.waitForSelector('#events tbody tr');
    expect(await page.textContent('#events tbody')).toContain('DEVICE_ONLINE');
    await page.close();
  });

  it('a model family shows its variants and one point per measured variant on the chart', async () => {
    const { models } = fleet.cloud.services;
    const original = await models.add(await taggedSample('family-fp32'), {
      name: 'family',
      metrics: { accuracy: 97.1, latencyMs: 0.05, accepted: true },
    });
    await models.add(await taggedSample('family-int8'), {
      name: 'family',
      variant: 'int8',
      sourceModelId: original.id,
      metrics: { accuracy: 96.8, latencyMs: 0.03, accepted: true },
    });
    const page = await signIn();
    await page.evaluate(`location.hash = ${JSON.stringify(`#/models/${original.id}`)}`);
    await page.waitForSelector('svg.scatter');
    expect(await page.textContent('h1')).toMatch(/^family 2 variant\(s\)$/);
    expect(await page.locator('svg.scatter circle').count()).toBe(2);
    expect(await page.textContent('svg.scatter')).toContain('int8');
    await page.close();
  });
});
