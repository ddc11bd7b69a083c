import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentHandle } from '../../agent/main.js';
import type { CloudHandle } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';
import { startCloudForTests } from '../integration/support/backend-mode.js';
import { startFaultAgent } from './fleet.js';
import { buildHangingModel, buildMlp } from './models.js';
import { activeSlot, waitFor } from './procs.js';

/** Children of this process whose command line names `needle` (the agent's isolated model check). */
async function childrenWith(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const [stat, cmdline] = await Promise.all([
      readFile(`/proc/${name}/stat`, 'utf8').catch(() => ''),
      readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => ''),
    ]);
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === process.pid && cmdline.includes(needle)) found.push(Number(name));
  }
  return found;
}

// Long enough for a good model's check (a new node process loading onnxruntime) on a loaded
// 2-core machine: at 3000 ms the good model itself timed out at load 17.
const CHECK_TIMEOUT_MS = 10_000;

// Scenario 6: a model that hangs onnxruntime (a Loop of 2^62 iterations, in native code where
// nothing inside the agent could stop it) and one whose load crashes the process (SIGSEGV
// delivered to the isolated check, as a native crash would). Both are refused with a coded
// error, the check process is gone, the rollout stops and the device keeps its model.
describe('fault: a model that hangs or crashes onnxruntime on load', () => {
  let dir: string;
  let cloud: CloudHandle;
  let agent: AgentHandle;
  let dataDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-fault-model-'));
    dataDir = join(dir, 'agent');
    cloud = await startCloudForTests({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      logger: createLogger({ name: 'cloud', level: 'silent' }),
    });
    agent = await startFaultAgent(cloud.mqttUrl, (await cloud.services.issueEnrollToken()).token, dataDir, {
      modelCheckTimeoutMs: CHECK_TIMEOUT_MS,
    });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop().catch(() => {});
    await cloud?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const deviceId = () => agent.identity.deviceId;
  async function rollOut(bytes: Buffer, name: string) {
    const { models, rollouts, rolloutStore } = cloud.services;
    const model = await models.add(bytes, { name });
    const { id } = await rollouts.create(model.id, { devices: [deviceId()] }, {}, 'test');
    const done = () =>
      waitFor(
        `rollout ${id}`,
        async () => {
          const r = await rolloutStore.get(id);
          return r && r.status !== 'running'
            ? { rollout: r, execution: (await rolloutStore.executions(id))[0] }
            : undefined;
        },
        60_000,
      );
    return { model, done };
  }

  it('times out a hanging model, kills its check, reports it and keeps the old model', async () => {
    const good = await rollOut(buildMlp({ seed: 41 }), 'good');
    const first = await good.done();
    expect(first.rollout.status, JSON.stringify(first)).toBe('succeeded');

    const started = Date.now();
    const hang = await rollOut(buildHangingModel('hang-1'), 'hang');
    const { rollout, execution } = await hang.done();
    expect(execution.status).toBe('failed');
    expect(execution.reason).toMatch(
      new RegExp(`^RUNTIME_TIMEOUT: onnxruntime did not load and run .* within ${CHECK_TIMEOUT_MS} ms`),
    );
    expect(rollout.status).toBe('aborted');
    // Not left hanging: one timed-out check, not a retry loop (generous for a loaded machine).
    expect(Date.now() - started).toBeLessThan(CHECK_TIMEOUT_MS * 4);
    // Reported as an event, not retried (a hang is a property of the model), check process gone.
    await waitFor('the RUNTIME_TIMEOUT event', async () =>
      (await cloud.services.telemetry.events(deviceId())).some((e) => e.code === 'RUNTIME_TIMEOUT'),
    );
    expect(await childrenWith('model.onnx')).toEqual([]);
    const slot = await activeSlot(dataDir);
    expect(slot.stateSha).toBe(good.model.sha256);
    expect(slot.fileSha).toBe(good.model.sha256);
    await waitFor('the device back on the old model', async () => {
      const d = await cloud.services.devices.get(deviceId());
      return d.activeSha256 === good.model.sha256 && d.phase === 'active';
    });
  });

  it('reports a crash of the check process and keeps the old model', async () => {
    const before = (await activeSlot(dataDir)).stateSha;
    const crash = await rollOut(buildHangingModel('crash-2'), 'crash');
    // Each isolated load crashes the way a native fault would (the agent tries twice, so that
    // a process lost to the device's limits does not fail a rollout).
    const crashed = new Set<number>();
    let finished = false;
    const crasher = (async () => {
      while (!finished) {
        for (const pid of await childrenWith(join(dataDir, 'slots'))) {
          if (crashed.has(pid)) continue;
          crashed.add(pid);
          process.kill(pid, 'SIGSEGV');
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const { rollout, execution } = await crash.done().finally(() => {
      finished = true;
    });
    await crasher;
    expect(crashed.size).toBe(2);
    expect(execution.status).toBe('failed');
    expect(execution.reason).toMatch(
      /^RUNTIME_LOAD: onnxruntime crashed loading .*\(signal SIGSEGV\) \(2 attempts\)/,
    );
    expect(rollout.status).toBe('aborted');
    expect((await activeSlot(dataDir)).stateSha).toBe(before);

    // The agent is unharmed: the next good model installs.
    const next = await rollOut(buildMlp({ seed: 42 }), 'good-2');
    expect((await next.done()).rollout.status).toBe('succeeded');
    expect((await activeSlot(dataDir)).fileSha).toBe(next.model.sha256);
  });
});
