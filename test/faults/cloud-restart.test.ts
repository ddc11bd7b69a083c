import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../../agent/main.js';
import { onPgMosquitto } from '../integration/support/backend-mode.js';
import { auditTelemetry, startFaultAgent } from './fleet.js';
import { buildMlp } from './models.js';
import { CloudProcess, freePort, waitFor } from './procs.js';

interface RolloutDetail {
  id: string;
  status: string;
  executions: Array<{
    deviceId: string;
    wave: number;
    status: string;
    startedAt: string;
    finishedAt: string;
  }>;
}

// Scenarios 2 (embedded broker) and 3: the embedded broker lives in the cloud process, so a
// broker restart is a restart of `fleetml cloud start`: SIGTERM + respawn, then kill -9 +
// respawn, during rollouts and while two agents stream telemetry every 200 ms. The rollouts
// must complete from their stored state and every telemetry record must be stored exactly once.
// On pg-mosquitto the same restarts hit a cloud on PostgreSQL behind a Mosquitto that stays up.
const SETUP = onPgMosquitto ? 'on PostgreSQL; Mosquitto stays up' : 'embedded broker';
describe(`fault: cloud process restarts (${SETUP})`, () => {
  let dir: string;
  let cloud: CloudProcess;
  const agents: Array<{ agent: AgentHandle; dataDir: string }> = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-fault-cloud-'));
    cloud = new CloudProcess({
      dataDir: join(dir, 'cloud'),
      httpPort: await freePort(),
      mqttPort: await freePort(),
    });
    await cloud.start();
    const { token } = await cloud.api<{ token: string }>('POST', '/api/enroll-tokens', { uses: 2 });
    for (let i = 0; i < 2; i++) {
      const dataDir = join(dir, `agent-${i}`);
      agents.push({ agent: await startFaultAgent(cloud.mqttUrl, token, dataDir), dataDir });
    }
    await waitFor('agents online', async () => {
      const { devices } = await cloud.api<{ devices: Array<{ online: boolean }> }>('GET', '/api/devices');
      return devices.filter((d) => d.online).length === 2;
    });
  }, 90_000);

  afterAll(async () => {
    for (const { agent } of agents) await agent.stop().catch(() => {});
    await cloud?.stop('SIGKILL');
    await cloud?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  const ids = () => agents.map((a) => a.agent.identity.deviceId);
  const upload = async (seed: number) =>
    cloud.api<{ id: string; sha256: string }>(
      'POST',
      `/api/models?name=restart-${seed}`,
      buildMlp({ inputs: 1024, hidden: 512, seed }),
    );
  const rollout = (id: string) => cloud.api<RolloutDetail>('GET', `/api/rollouts/${id}`);
  const finished = (id: string) =>
    waitFor(
      `rollout ${id}`,
      async () => {
        const r = await rollout(id);
        return r.status !== 'running' ? r : undefined;
      },
      90_000,
      200,
    );
  const diagnose = (done: RolloutDetail) =>
    JSON.stringify({ done, events: cloud.query('SELECT device_id, code, message, at FROM events') });
  /** Resolves once `agent` is mid-transfer (some blocks in, not all). */
  const midTransfer = (agent: AgentHandle) =>
    waitFor(
      'a transfer in progress',
      () => {
        const stats = agent.downloader.lastStats;
        return agent.reconciler.currentPhase === 'downloading' && stats && stats.receivedBlocks >= 5;
      },
      60_000,
      5,
    );

  it('SIGTERM + respawn during a rollout and during telemetry: the rollout completes', async () => {
    const model = await upload(1);
    const created = await cloud.api<{ id: string }>('POST', '/api/rollouts', {
      model: model.id,
      devices: ids(),
      policy: { deviceTimeoutS: 300 },
    });
    await midTransfer(agents[0].agent);
    await cloud.stop('SIGTERM');
    await cloud.start();
    const done = await finished(created.id);
    expect(done.status, diagnose(done)).toBe('succeeded');
    expect(done.executions.every((e) => e.status === 'succeeded')).toBe(true);
    for (const { agent } of agents) expect(agent.reconciler.currentPhase).toBe('active');
    // Telemetry keeps flowing; restart once more with nothing but telemetry in flight.
    await new Promise((r) => setTimeout(r, 500));
    await cloud.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await cloud.start();
  }, 150_000);

  it('kill -9 + respawn twice during a rollout in waves: it resumes from its stored state', async () => {
    const model = await upload(2);
    const created = await cloud.api<{ id: string }>('POST', '/api/rollouts', {
      model: model.id,
      devices: ids(),
      policy: { canaryPercent: 50, deviceTimeoutS: 300 },
    });
    const first = await rollout(created.id);
    const canary = first.executions.find((e) => e.wave === 0)!;
    const second = first.executions.find((e) => e.wave === 1)!;
    const agentOf = (deviceId: string) => agents.find((a) => a.agent.identity.deviceId === deviceId)!.agent;
    // Killed while the canary downloads...
    await midTransfer(agentOf(canary.deviceId));
    await cloud.stop('SIGKILL');
    await cloud.start();
    // ...and again while the second wave downloads, which only a resumed rollout can start.
    await midTransfer(agentOf(second.deviceId));
    await cloud.stop('SIGKILL');
    await cloud.start();
    const done = await finished(created.id);
    expect(done.id).toBe(created.id);
    expect(done.status, diagnose(done)).toBe('succeeded');
    const [w0, w1] = [0, 1].map((w) => done.executions.find((e) => e.wave === w)!);
    expect(w0.status).toBe('succeeded');
    expect(w1.status).toBe('succeeded');
    expect(Date.parse(w1.startedAt)).toBeGreaterThanOrEqual(Date.parse(w0.finishedAt));
    for (const { agent } of agents) {
      const device = await cloud.api<{ activeModel: { id: string } }>(
        'GET',
        `/api/devices/${agent.identity.deviceId}`,
      );
      expect(device.activeModel.id).toBe(model.id);
      expect(agent.reconciler.currentPhase).toBe('active');
    }
  }, 150_000);

  it('lost no telemetry record and stored none twice across the four restarts', async () => {
    const audit = await auditTelemetry(agents, (deviceId) => cloud.telemetrySeqs(deviceId));
    console.log(JSON.stringify({ scenario: 'cloud-restart', audit }));
    for (const a of audit) {
      expect(a.produced).toBeGreaterThan(20);
      expect(a.lost).toBe(0);
      expect(a.duplicated).toBe(0);
      expect(a.dropped).toBe(0);
      expect(a.stored).toBe(a.produced);
    }
  });
});
