import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { type DeployFlags, register, rolloutPolicy } from '../../../../cloud/cli/deploy.js';
import { rolloutRig } from '../../../support/rollout-rig.js';

const DEVICES = ['a', 'b', 'c', 'd', 'e'];
const rig = () => rolloutRig(DEVICES);

/** The policy `fleetml deploy mnist --to … ARGV` sends (its other flags at their defaults). */
function deployPolicy(argv: string[]) {
  const program = new Command('fleetml');
  register(program);
  const deploy = program.commands.find((c) => c.name() === 'deploy')!;
  deploy.parseOptions(['mnist', '--to', DEVICES.join(','), ...argv]);
  return rolloutPolicy(deploy.opts() as DeployFlags);
}

describe('deploy --max-per-minute: the engine starts at most that many devices in any minute', () => {
  it('starts 2 of 5 at once, the next 2 a minute later, the last one a minute after that', async () => {
    const { engine, model, clock, statuses } = await rig();
    const policy = deployPolicy(['--max-per-minute', '2']);
    expect(policy.maxPerMinute).toBe(2);
    const rollout = await engine.create(model.id, { devices: DEVICES }, policy, 't');
    const started = async () => (await statuses(rollout.id)).filter((s) => s !== 'queued').length;
    expect(await started()).toBe(2);
    await engine.tick();
    expect(await started()).toBe(2); // still inside the first minute
    clock.offsetMs = 30_000;
    await engine.tick();
    expect(await started()).toBe(2);
    clock.offsetMs = 61_000;
    await engine.tick();
    expect(await started()).toBe(4);
    clock.offsetMs = 122_000;
    await engine.tick();
    expect(await started()).toBe(5);
  });

  it('without it, every device of the wave starts at once', async () => {
    const { engine, model, statuses } = await rig();
    const rollout = await engine.create(model.id, { devices: DEVICES }, deployPolicy([]), 't');
    expect(await statuses(rollout.id)).toEqual(DEVICES.map(() => 'in_progress'));
  });
});

describe('deploy --abort-min-devices: failures are judged only once that many devices finished', () => {
  it('with 3, one failure among the first finished does not abort; the failure rate over 3 does', async () => {
    const { engine, store, model, report, statuses } = await rig();
    const policy = deployPolicy(['--abort-min-devices', '3', '--abort-failure-percent', '20']);
    expect(policy).toMatchObject({ abortMinDevices: 3, abortFailurePercent: 20 });
    const rollout = await engine.create(model.id, { devices: DEVICES }, policy, 't');
    await report('a', model, false);
    await engine.tick();
    await report('b', model, true);
    await engine.tick();
    expect((await store.get(rollout.id))?.status).toBe('running');
    expect(await statuses(rollout.id)).toEqual([
      'failed',
      'succeeded',
      'in_progress',
      'in_progress',
      'in_progress',
    ]);
    await report('c', model, true);
    await engine.tick();
    const done = await store.get(rollout.id);
    expect(done?.status).toBe('aborted');
    expect(done?.reason).toMatch(/1 of 3 devices failed \(33 % > 20 %\)/);
  });

  it('at the default of 1, the first failure aborts', async () => {
    const { engine, store, model, report } = await rig();
    const rollout = await engine.create(model.id, { devices: DEVICES }, deployPolicy([]), 't');
    await report('a', model, false);
    await engine.tick();
    expect((await store.get(rollout.id))?.status).toBe('aborted');
  });
});
