import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../agent/config.js';
import { startAgent } from '../../../agent/main.js';
import { createLogger } from '../../../shared/logger.js';
import { FleetHarness, waitFor } from './fleet-harness.js';

// Issue 14: an agent that says what it does: one info line per step, device events for
// activation and rollback, and its own name (two agents on one host are no longer both "vm").
describe('an agent that says what it does', () => {
  let fleet: FleetHarness;
  const lines: Array<{ msg: string; [k: string]: unknown }> = [];
  beforeAll(async () => {
    fleet = await FleetHarness.start(0);
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const { token } = await fleet.cloud.services.issueEnrollToken();
    fleet.agents[0] = await startAgent({
      config: resolveConfig({
        cloudUrl: fleet.cloud.mqttUrl,
        enrollToken: token,
        dataDir: join(fleet.dir, 'agent-0'),
        benchRuns: 5,
        benchWarmupRuns: 1,
        name: 'pi-kitchen',
      }),
      logger: createLogger({ name: 'agent', level: 'info', pretty: false, destination: sink }),
    });
  }, 60_000);
  afterAll(async () => fleet?.stop());

  it('enrolls under --name, logs every step and records activations and a rollback as events', async () => {
    const device = await waitFor('the device', async () => (await fleet.cloud.services.devices.list())[0]);
    expect(device.name).toBe('pi-kitchen');
    expect(device.id).toMatch(/^pi-kitchen/);
    const { rollouts, telemetry } = fleet.cloud.services;
    const a = await fleet.model('says-a');
    const b = await fleet.model('says-b');
    for (const model of [a, b, a]) {
      const r = await rollouts.create(model.id, { devices: [device.id] }, {}, 'test');
      expect((await fleet.waitRollout(r.id)).status).toBe('succeeded');
    }
    const messages = lines.map((l) => l.msg);
    for (const step of [
      'manifest verified (signature, expiry, version)',
      'installed: load check and golden check passed, benchmarking',
      'benchmark done',
    ]) {
      expect(messages.filter((m) => m === step)).toHaveLength(3);
    }
    // The rollback finds A still verified in the inactive slot: it is not fetched again.
    for (const step of ['transfer started', 'transfer done, SHA-256 verified']) {
      expect(messages.filter((m) => m === step)).toHaveLength(2);
    }
    expect(
      messages.filter((m) => m === 'already verified in the inactive slot: not fetched again'),
    ).toHaveLength(1);
    expect(messages.filter((m) => m.startsWith('activated: '))).toHaveLength(2);
    expect(messages.filter((m) => m.startsWith('rolled back: '))).toHaveLength(1);
    const events = await waitFor('the rollback event', async () => {
      const list = (await telemetry.events(device.id)) as Array<{ code: string; message: string }>;
      return list.some((e) => e.code === 'MODEL_ROLLED_BACK') ? list : undefined;
    });
    expect(events.filter((e) => e.code === 'MODEL_ACTIVATED')).toHaveLength(2);
    expect(events.find((e) => e.code === 'MODEL_ROLLED_BACK')!.message).toContain(`${a.id} v`);
    // One install per model put into a slot (the rollback reinstalls A without fetching it).
    expect(events.filter((e) => e.code === 'MODEL_INSTALLED')).toHaveLength(3);
    expect(events.filter((e) => e.code === 'DEVICE_ONLINE')).toHaveLength(1);
  }, 240_000);

  it('records the device going offline and coming back online', async () => {
    const device = (await fleet.cloud.services.devices.list())[0];
    const { telemetry } = fleet.cloud.services;
    const codes = async () =>
      ((await telemetry.events(device.id)) as Array<{ code: string }>).map((e) => e.code);
    await fleet.agents[0].stop();
    await waitFor('the offline event', async () => (await codes()).includes('DEVICE_OFFLINE'));
    expect((await fleet.cloud.services.devices.get(device.id)).online).toBe(false);
    fleet.agents[0] = await startAgent({
      config: resolveConfig({ cloudUrl: fleet.cloud.mqttUrl, dataDir: join(fleet.dir, 'agent-0') }),
      logger: createLogger({ name: 'agent', level: 'silent' }),
    });
    await waitFor(
      'the second online event',
      async () => (await codes()).filter((c) => c === 'DEVICE_ONLINE').length === 2,
    );
    // Newest first: offline, then online again; nothing recorded twice.
    const sequence = (await codes()).filter((c) => c === 'DEVICE_ONLINE' || c === 'DEVICE_OFFLINE');
    expect(sequence).toEqual(['DEVICE_ONLINE', 'DEVICE_OFFLINE', 'DEVICE_ONLINE']);
  }, 120_000);
});
