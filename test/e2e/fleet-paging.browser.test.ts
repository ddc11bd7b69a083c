import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../cloud/fleet/identity/secrets.js';
import { type CloudHandle, startCloud } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';

// The fleet page shows a page of devices at a time (a big fleet must not render 10,000 rows):
// the API filters and counts, the page pages, searches and keeps a selection across pages.
const CHROMIUM = '/usr/bin/chromium';
const DEVICES = 250;
const id = (d: number) => `dev-${String(d).padStart(4, '0')}`;

describe('fleet device list: pages, search and selection', () => {
  let dir: string;
  let cloud: CloudHandle;
  let browser: Browser | undefined;
  let modelId: string;
  const api = async (path: string, init: RequestInit = {}) => {
    const response = await fetch(`${cloud.httpUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${cloud.adminToken}`, 'content-type': 'application/json' },
    });
    return { status: response.status, body: (await response.json()) as any };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-paging-'));
    cloud = await startCloud({
      dataDir: dir,
      httpPort: 0,
      mqttPort: 0,
      logger: createLogger({ name: 'test', level: 'error' }),
    });
    const s = cloud.services;
    const model = await s.models.add(
      await readFile(new URL('../../cloud/samples/mnist-mlp.onnx', import.meta.url)),
      {
        name: 'paging-mnist',
      },
    );
    modelId = model.id;
    const now = new Date().toISOString();
    for (let d = 0; d < DEVICES; d++) {
      await s.devices.create({
        id: id(d),
        name: `device ${d}`,
        secretHash: hashSecret(id(d)),
        profile: d % 2 ? 'rpi5' : 'x86-avx2',
        hardware: {
          hostname: 'paging',
          arch: 'arm64',
          platform: 'linux',
          cpuModel: 'Cortex-A76',
          cpuCores: 4,
          memoryBytes: 4e9,
          gpu: null,
          executionProviders: ['cpu'],
          onnxruntimeVersion: '1.30.0',
          nodeVersion: process.version,
        },
      });
      await s.devices.setOnline(id(d), d % 10 !== 0, now);
    }
    if (existsSync(CHROMIUM))
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await cloud?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('GET /api/devices pages, filters and counts the matches; bad paging is INPUT_INVALID', async () => {
    const all = await api('/api/devices');
    expect(all.body.devices).toHaveLength(DEVICES);
    expect(all.body).toMatchObject({ total: DEVICES, online: DEVICES - DEVICES / 10 });

    const second = await api('/api/devices?limit=100&offset=100');
    expect(second.body.devices.map((d: { id: string }) => d.id)).toEqual(
      Array.from({ length: 100 }, (_, i) => id(100 + i)),
    );
    expect(second.body.total).toBe(DEVICES);

    const search = await api('/api/devices?limit=100&q=DEVICE%2024');
    expect(search.body.devices.map((d: { name: string }) => d.name).sort()).toEqual(
      ['device 24', ...Array.from({ length: 10 }, (_, i) => `device ${240 + i}`)].sort(),
    );
    const offline = await api('/api/devices?limit=5&online=false');
    expect(offline.body).toMatchObject({ total: DEVICES / 10, online: 0 });
    expect(offline.body.devices).toHaveLength(5);
    const byProfile = await api('/api/devices?limit=1000&q=rpi5');
    expect(byProfile.body.total).toBe(DEVICES / 2);

    for (const bad of ['limit=0', 'limit=1001', 'offset=-1', 'online=maybe', 'limit=ten']) {
      const response = await api(`/api/devices?${bad}`);
      expect(response.status, bad).toBe(400);
      expect(response.body.error.code, bad).toBe('INPUT_INVALID');
    }
  });

  it.skipIf(!existsSync(CHROMIUM))(
    'the fleet page shows 100 rows, pages, searches and deploys to devices ticked on different pages',
    async () => {
      const page = await browser!.newPage({ viewport: { width: 1440, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${cloud.httpUrl}/#token=${encodeURIComponent(cloud.adminToken)}`);
      await page.waitForSelector(`tr[data-id="${id(0)}"]`);
      expect(await page.locator('#devices tbody tr').count()).toBe(100);
      expect(await page.textContent('h1')).toContain(`${DEVICES} devices · ${DEVICES - DEVICES / 10} online`);
      expect(await page.textContent('#devices-range')).toContain(`1–100 of ${DEVICES}`);
      expect(await page.isDisabled('#devices-prev')).toBe(true);

      await page.check(`tr[data-id="${id(3)}"] input.pick`);
      await page.click('#devices-next');
      await page.waitForSelector(`tr[data-id="${id(150)}"]`);
      await page.check(`tr[data-id="${id(150)}"] input.pick`);
      expect(await page.textContent('#devices-range')).toContain('101–200 of 250 (225 online) · 2 selected');
      await page.click('#devices-next');
      await page.waitForSelector(`tr[data-id="${id(249)}"]`);
      expect(await page.locator('#devices tbody tr').count()).toBe(50);
      expect(await page.isDisabled('#devices-next')).toBe(true);

      await page.fill('#devices-search', 'device 24');
      await page.waitForFunction("document.querySelectorAll('#devices tbody tr').length === 11");
      expect(await page.textContent('#devices-range')).toContain('1–11 of 11');
      await page.fill('#devices-search', '');
      await page.selectOption('#devices-online', 'false');
      await page.waitForFunction("document.querySelectorAll('#devices tbody tr').length === 25");
      await page.selectOption('#devices-online', '');
      await page.waitForSelector(`tr[data-id="${id(3)}"] input.pick:checked`);

      await page.selectOption('#deploy-model', modelId);
      await page.click('#deploy-button');
      await page.waitForURL(/#\/rollouts\/r-/);
      const rolloutId = decodeURIComponent(page.url().split('#/rollouts/')[1]);
      const rollout = await api(`/api/rollouts/${encodeURIComponent(rolloutId)}`);
      expect(rollout.body.executions.map((e: { deviceId: string }) => e.deviceId).sort()).toEqual([
        id(3),
        id(150),
      ]);
      expect(errors).toEqual([]);
    },
    120_000,
  );
});
