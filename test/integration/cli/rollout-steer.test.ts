import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudCli, cloudCli } from '../../support/fleetml-cli.js';
import { FleetHarness, waitFor } from '../e2e/fleet-harness.js';

// `fleetml rollouts list|pause|resume|cancel --help`, against a real cloud: a rollout in waves
// of one whose first device has gone away is paused, resumed and cancelled; after the cancel no
// execution is left queued.
describe('fleetml rollouts: list, pause, resume, cancel', () => {
  let fleet: FleetHarness;
  let cli: CloudCli['cli'];
  let json: CloudCli['json'];
  beforeAll(async () => {
    fleet = await FleetHarness.start(2);
    ({ cli, json } = cloudCli(fleet.cloud));
  }, 120_000);
  afterAll(async () => fleet?.stop());

  it('steers a running rollout', async () => {
    const [gone, here] = fleet.deviceIds();
    await fleet.agents[0].stop();
    await waitFor(
      'the first device offline',
      async () => !(await fleet.cloud.services.devices.get(gone)).online,
      60_000,
    );
    const model = await fleet.model('steer');
    const rollout = await json('deploy', model.id, '--to', `${gone},${here}`, '--wave-size', '1');
    expect(rollout.status).toBe('running');
    expect((await json('rollouts', 'pause', rollout.id)).status).toBe('paused');
    // Pausing twice is a coded conflict, not a crash.
    const again = await cli('rollouts', 'pause', rollout.id);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error [A-Z_]+: /m);
    expect((await json('rollouts', 'resume', rollout.id)).status).toBe('running');
    expect((await json('rollouts', 'cancel', rollout.id)).status).toBe('canceled');
    const listed = await json('rollouts', 'list');
    expect(listed.rollouts.map((r: { id: string }) => r.id)).toContain(rollout.id);
    const shown = await json('rollouts', 'show', rollout.id);
    const byDevice = Object.fromEntries(
      shown.executions.map((e: { deviceId: string; status: string }) => [e.deviceId, e.status]),
    );
    // Nothing is left queued (a device already updating finishes on its own).
    expect(Object.keys(byDevice).sort()).toEqual([gone, here].sort());
    expect(Object.values(byDevice)).not.toContain('queued');
  }, 600_000);
});
