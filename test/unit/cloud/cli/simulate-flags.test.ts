import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { register, type SimulateFlags, simulationOptions } from '../../../../cloud/simulator/cli.js';
import { DEFAULT_SIMULATOR_OPTIONS } from '../../../../cloud/simulator/options.js';

// Every flag of `fleetml simulate --help` reaches the simulation; the simulation itself runs
// in test/integration/scale/simulator.test.ts.
function optionsOf(argv: string[]) {
  const program = new Command('fleetml');
  register(program);
  const simulate = program.commands.find((c) => c.name() === 'simulate')!;
  simulate.parseOptions(['--cloud', 'mqtt://127.0.0.1:1883', '--enroll-token', 'enr_x', ...argv]);
  return simulationOptions(simulate.opts() as SimulateFlags, 'PEM');
}

describe('simulate flags', () => {
  it('defaults are the simulator defaults', () => {
    const d = DEFAULT_SIMULATOR_OPTIONS;
    expect(optionsOf([])).toEqual({
      cloud: 'mqtt://127.0.0.1:1883',
      enrollToken: 'enr_x',
      caPem: 'PEM',
      devices: d.devices,
      durationS: d.durationS,
      telemetryIntervalS: d.telemetryIntervalS,
      recordsPerBatch: d.recordsPerBatch,
      rampS: d.rampS,
      enrollConcurrency: d.enrollConcurrency,
      latencyMedianMs: d.latencyMedianMs,
      seed: d.seed,
      namePrefix: d.namePrefix,
    });
  });

  it('maps every flag; a negative number is INPUT_INVALID naming it', () => {
    expect(
      optionsOf([
        ...['--devices', '12', '--duration', '30', '--interval', '2', '--records-per-batch', '3'],
        ...['--ramp', '5', '--enroll-concurrency', '4', '--latency-ms', '6.5', '--seed', '9'],
        ...['--name-prefix', 'lab'],
      ]),
    ).toMatchObject({
      devices: 12,
      durationS: 30,
      telemetryIntervalS: 2,
      recordsPerBatch: 3,
      rampS: 5,
      enrollConcurrency: 4,
      latencyMedianMs: 6.5,
      seed: 9,
      namePrefix: 'lab',
    });
    expect(() => optionsOf(['--ramp', '-1'])).toThrow(/--ramp must be a number >= 0/);
  });
});
