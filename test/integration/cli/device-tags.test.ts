import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudCli, cloudCli } from '../../support/fleetml-cli.js';
import { FleetHarness } from '../e2e/fleet-harness.js';

// Issue 14: deploy --tag was documented, but tags could only be set through the HTTP API.

describe('fleetml devices tag / untag, and deploy --tag', () => {
  let fleet: FleetHarness;
  let cli: CloudCli['cli'];
  beforeAll(async () => {
    fleet = await FleetHarness.start(2);
    // The API options come last, after the subcommand's own arguments, as a user types them.
    cli = cloudCli(fleet.cloud).cli;
  }, 60_000);
  afterAll(async () => fleet?.stop());

  it('adds and removes tags, lists by tag, and deploys to the tagged device only', async () => {
    const [kitchen, hall] = fleet.deviceIds();
    const tagged = await cli('devices', 'tag', kitchen, 'kitchen', 'floor-2');
    expect(tagged.code, tagged.stderr).toBe(0);
    expect(tagged.stdout.trim()).toBe(`${kitchen}  tags kitchen,floor-2`);
    // Adding a tag it has changes nothing; tags of other devices are untouched.
    expect((await cli('devices', 'tag', kitchen, 'kitchen')).stdout.trim()).toBe(
      `${kitchen}  tags kitchen,floor-2`,
    );
    expect((await fleet.cloud.services.devices.get(hall)).tags).toEqual([]);

    const listed = JSON.parse((await cli('devices', '--tag', 'kitchen', '--json')).stdout);
    expect(listed.devices.map((d: { id: string }) => d.id)).toEqual([kitchen]);
    expect((await cli('devices')).stdout).toContain(`tags kitchen,floor-2`);

    const untagged = JSON.parse((await cli('devices', 'untag', kitchen, 'floor-2', '--json')).stdout);
    expect(untagged).toEqual({ id: kitchen, tags: ['kitchen'] });

    const model = await fleet.model('tags');
    const deployed = await cli('deploy', model.id, '--tag', 'kitchen', '--timeout', '60', '--json');
    expect(deployed.code, deployed.stderr).toBe(0);
    const rollout = await fleet.waitRollout(JSON.parse(deployed.stdout).id, 120_000);
    expect(rollout.status).toBe('succeeded');
    expect((await fleet.cloud.services.rolloutStore.executions(rollout.id)).map((e) => e.deviceId)).toEqual([
      kitchen,
    ]);
  }, 180_000);

  it('refuses bad tags and unknown devices with a coded error', async () => {
    const [kitchen] = fleet.deviceIds();
    const spaced = await cli('devices', 'tag', kitchen, 'two words');
    expect(spaced.code).toBe(1);
    expect(spaced.stderr).toMatch(/^error INPUT_INVALID: .*a tag is 1-64 letters, digits or \. _ : -/m);
    const unknown = await cli('devices', 'untag', 'no-such-device', 'kitchen');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error NOT_FOUND: no device no-such-device/m);
    expect((await fleet.cloud.services.devices.get(kitchen)).tags).toEqual(['kitchen']);
  });

  it('tokens enroll --ttl: the token lives --ttl seconds (--uses: readme-fleet enrolls two devices with one)', async () => {
    const before = Date.now();
    const r = await cli('tokens', 'enroll', '--ttl', '120', '--uses', '3', '--json');
    expect(r.code, r.stderr).toBe(0);
    const after = Date.now();
    const { token, expiresAt } = JSON.parse(r.stdout);
    // Created between `before` and `after`, to live 120 s (1 s for clock rounding).
    expect(Date.parse(expiresAt)).toBeGreaterThanOrEqual(before + 119_000);
    expect(Date.parse(expiresAt)).toBeLessThanOrEqual(after + 121_000);
    expect(token).toMatch(/^enr_/);
    const bad = await cli('tokens', 'enroll', '--ttl', 'forever');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error INPUT_INVALID: --ttl must be a number >= 1/m);
  });
});
