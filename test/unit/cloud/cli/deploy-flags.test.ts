import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { type DeployFlags, deployDevices, register, rolloutPolicy } from '../../../../cloud/cli/deploy.js';

// Every flag of `fleetml deploy --help` reaches the rollout request; what the rollout engine
// does with the policy is tested in test/integration/e2e/rollouts.test.ts.
function flagsOf(argv: string[]): DeployFlags {
  const program = new Command('fleetml');
  register(program);
  const deploy = program.commands.find((c) => c.name() === 'deploy')!;
  deploy.parseOptions(['mnist-mlp', ...argv]);
  return deploy.opts() as DeployFlags;
}

describe('deploy flags', () => {
  it('defaults: all at once, abort above 20 % failures after one device, 600 s per device, roll back', () => {
    expect(rolloutPolicy(flagsOf(['--to', 'd1']))).toEqual({
      canaryPercent: 0,
      waveSize: 0,
      maxPerMinute: 0,
      abortFailurePercent: 20,
      abortMinDevices: 1,
      latencyObjectiveMs: null,
      deviceTimeoutS: 600,
      rollbackOnAbort: true,
    });
  });

  it('maps every rollout flag', () => {
    const flags = flagsOf([
      ...['--tag', 'kitchen', '--canary', '10', '--wave-size', '20', '--max-per-minute', '30'],
      ...['--abort-failure-percent', '5', '--abort-min-devices', '3', '--latency-objective', '250'],
      ...['--timeout', '60', '--no-rollback'],
    ]);
    expect(rolloutPolicy(flags)).toEqual({
      canaryPercent: 10,
      waveSize: 20,
      maxPerMinute: 30,
      abortFailurePercent: 5,
      abortMinDevices: 3,
      latencyObjectiveMs: 250,
      deviceTimeoutS: 60,
      rollbackOnAbort: false,
    });
    expect(deployDevices(flags)).toBeUndefined();
  });

  it('--to takes a comma-separated list; no target at all and bad numbers are INPUT_INVALID', () => {
    expect(deployDevices(flagsOf(['--to', 'a, b,,c']))).toEqual(['a', 'b', 'c']);
    expect(deployDevices(flagsOf(['--profile', 'rpi5']))).toBeUndefined();
    expect(() => deployDevices(flagsOf([]))).toThrow('name --to, --tag or --profile');
    expect(() => rolloutPolicy(flagsOf(['--to', 'a', '--canary', 'ten']))).toThrow(
      /--canary must be a number >= 0/,
    );
  });
});
