import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../../agent/main.js';
import type { CloudHandle } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';
import { startCloudForTests, storedTelemetry } from '../integration/support/backend-mode.js';
import { startFaultAgent } from './fleet.js';
import { buildMlp } from './models.js';
import { activeSlot, waitFor } from './procs.js';

// A real full disk: the agent's data dir is a 12 MiB tmpfs, which needs root (CI runs as root).
const CAN_MOUNT = process.platform === 'linux' && process.getuid?.() === 0;

// Scenario 5: the device's disk fills up (another program writes a big file) while a 4 MB model
// downloads. The download must stop with TRANSFER_NO_SPACE, give the partial file's space back,
// and the old model must stay active and keep serving (its latency probe keeps running).
describe.skipIf(!CAN_MOUNT)('fault: disk full during a download', () => {
  let dir: string;
  let mount: string;
  let mounted = false;
  let cloud: CloudHandle;
  let agent: AgentHandle;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-fault-disk-'));
    mount = join(dir, 'device');
    await mkdir(mount);
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=12m,mode=0700', 'tmpfs', mount], {
      encoding: 'utf8',
    });
    if (result.status !== 0) throw new Error(`cannot mount a tmpfs: ${result.stderr}`);
    mounted = true;
    cloud = await startCloudForTests({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      logger: createLogger({ name: 'cloud', level: 'silent' }),
    });
    agent = await startFaultAgent(
      cloud.mqttUrl,
      (await cloud.services.issueEnrollToken()).token,
      join(mount, 'agent'),
      {
        windowBlocks: 2,
        telemetryIntervalS: 0.3,
      },
    );
  }, 60_000);

  afterAll(async () => {
    await agent?.stop().catch(() => {});
    await cloud?.stop();
    if (mounted) spawnSync('umount', ['-l', mount]);
    await rm(dir, { recursive: true, force: true });
  });

  it('stops the download with TRANSFER_NO_SPACE and keeps the old model serving', async () => {
    const { models, rollouts, rolloutStore, telemetry, devices } = cloud.services;
    const deviceId = agent.identity.deviceId;
    const finished = (id: string) =>
      waitFor(
        `rollout ${id}`,
        async () => {
          const r = await rolloutStore.get(id);
          return r && r.status !== 'running' ? r : undefined;
        },
        60_000,
      );

    const old = await models.add(buildMlp({ seed: 31 }), { name: 'small' });
    expect(
      (await finished((await rollouts.create(old.id, { devices: [deviceId] }, {}, 't')).id)).status,
    ).toBe('succeeded');

    const big = await models.add(buildMlp({ inputs: 1024, hidden: 1024, seed: 32 }), { name: 'big' });
    const rollout = await rollouts.create(big.id, { devices: [deviceId] }, {}, 't');
    const total = Math.ceil(big.size / 16_384);
    await waitFor(
      'a third of the download',
      () => (agent.downloader.lastStats?.receivedBlocks ?? 0) >= total / 3,
      60_000,
      5,
    );
    // Someone else fills the disk.
    const fs = await statfs(mount);
    await writeFile(join(mount, 'filler'), Buffer.alloc(fs.bavail * fs.bsize)).catch(
      (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOSPC') throw e;
      },
    );
    const failedAt = new Date().toISOString();

    const done = await finished(rollout.id);
    const [execution] = await rolloutStore.executions(rollout.id);
    expect(execution.status).toBe('failed');
    expect(execution.reason).toMatch(/^TRANSFER_NO_SPACE: disk full while writing artifact/);
    expect(done.status).toBe('aborted');
    expect((await devices.get(deviceId)).lastError?.code).toBe('TRANSFER_NO_SPACE');
    await waitFor('the coded event', async () =>
      (await telemetry.events(deviceId)).some((e) => e.code === 'TRANSFER_NO_SPACE'),
    );
    // The partial download gave its space back; the old model is still the active one.
    expect(agent.downloader.lastStats!.receivedBlocks).toBeLessThan(total);
    expect((await statfs(mount)).bavail).toBeGreaterThan(0);
    const slot = await activeSlot(join(mount, 'agent'));
    expect(slot.stateSha).toBe(old.sha256);
    expect(slot.fileSha).toBe(old.sha256);
    expect((await devices.get(deviceId)).activeSha256).toBe(old.sha256);
    // ...and keeps serving: telemetry sampled after the failure carries its probe latencies.
    const served = await waitFor(
      'latency of the old model after the failure',
      async () =>
        (await storedTelemetry(cloud, deviceId)).find(
          (r) => r.modelId === old.id && Date.parse(r.at) > Date.parse(failedAt) && (r.latCount ?? 0) > 0,
        ),
      30_000,
    );
    expect(served.latCount).toBeGreaterThan(0);
    console.log(
      JSON.stringify({
        scenario: 'disk-full',
        total,
        received: agent.downloader.lastStats!.receivedBlocks,
        reason: execution.reason,
      }),
    );
  });
});
