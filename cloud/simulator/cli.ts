import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';
import { numberOption } from '../cli/number-option.js';
import { DEFAULT_SIMULATOR_OPTIONS, type SimulatorOptions } from './options.js';

const d = DEFAULT_SIMULATOR_OPTIONS;

/** `simulate`'s flags as commander hands them over (strings). */
export type SimulateFlags = Record<string, string | undefined>;

/** The simulation the flags ask for: one pure step, unit-tested flag by flag. */
export function simulationOptions(
  flags: SimulateFlags,
  caPem?: string,
): Partial<SimulatorOptions> & { cloud: string; enrollToken: string } {
  const n = (value: string | undefined, flag: string) => numberOption(value, flag, 0);
  return {
    cloud: String(flags.cloud),
    enrollToken: String(flags.enrollToken),
    caPem,
    devices: n(flags.devices, '--devices'),
    durationS: n(flags.duration, '--duration'),
    telemetryIntervalS: n(flags.interval, '--interval'),
    recordsPerBatch: n(flags.recordsPerBatch, '--records-per-batch'),
    rampS: n(flags.ramp, '--ramp'),
    enrollConcurrency: n(flags.enrollConcurrency, '--enroll-concurrency'),
    latencyMedianMs: n(flags.latencyMs, '--latency-ms'),
    seed: n(flags.seed, '--seed'),
    namePrefix: flags.namePrefix,
  };
}

async function readCa(path: string, read: (p: string, e: 'utf8') => Promise<string>): Promise<string> {
  try {
    return await read(path, 'utf8');
  } catch (error) {
    throw new FleetError('FILE_NOT_FOUND', `cannot read --ca ${path}: ${(error as Error).message}`, { path });
  }
}

/** `fleetml simulate`: N simulated agents from one process, for load tests and demos. */
export function register(program: Command): void {
  program
    .command('simulate')
    .description(
      'run N simulated agents against a cloud over MQTT: real enrollment, target state, block transfer, state, telemetry and events',
    )
    .requiredOption('--cloud <url>', 'broker URL, e.g. mqtt://localhost:1883')
    .requiredOption('--enroll-token <token>', 'enrollment token with at least --devices uses')
    .option('--ca <file>', 'fleet CA to pin for mqtts (the cloud prints where it is)')
    .option('--devices <n>', 'simulated devices', String(d.devices))
    .option('--duration <s>', 'seconds to run, then disconnect cleanly', String(d.durationS))
    .option('--interval <s>', 'mean telemetry interval per device, seconds', String(d.telemetryIntervalS))
    .option('--records-per-batch <n>', 'telemetry records per batch', String(d.recordsPerBatch))
    .option('--ramp <s>', 'connect the devices over this many seconds', String(d.rampS))
    .option('--enroll-concurrency <n>', 'enrollments in flight at once', String(d.enrollConcurrency))
    .option('--latency-ms <ms>', 'fleet median inference latency, ms', String(d.latencyMedianMs))
    .option('--seed <n>', 'seed of the random draws', String(d.seed))
    .option('--name-prefix <prefix>', 'hostname prefix of the simulated devices', d.namePrefix)
    .option('--json', 'print one JSON object: devices, online, recordsSent, recordsAcked, …')
    .action(async (options) => {
      const { createLogger } = await import('../../shared/logger.js');
      const { startSimulation } = await import('./fleet.js');
      const { readFile } = await import('node:fs/promises');
      const logger = createLogger({ name: 'simulate', destination: process.stderr });
      const handle = startSimulation(
        simulationOptions(options, options.ca ? await readCa(options.ca, readFile) : undefined),
        logger,
      );
      const progress = setInterval(() => {
        const c = handle.counters;
        process.stderr.write(
          `simulate: ${c.connected} connected, ${c.enrolled} enrolled, ${c.recordsSent} records sent, ${c.recordsAcked} acked\n`,
        );
      }, 5000);
      progress.unref();
      process.once('SIGINT', () => handle.stop());
      process.once('SIGTERM', () => handle.stop());
      const result = await handle.done;
      clearInterval(progress);
      process.stdout.write(
        options.json
          ? `${JSON.stringify(result)}\n`
          : `devices ${result.devices}, online ${result.online}, records sent ${result.recordsSent}, acked ${result.recordsAcked}, models activated ${result.modelsActivated}\n`,
      );
      process.exit(0);
    });
}
