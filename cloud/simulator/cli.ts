import type { Command } from 'commander';
import { numberOption } from '../cli/number-option.js';
import { DEFAULT_SIMULATOR_OPTIONS } from './options.js';

const d = DEFAULT_SIMULATOR_OPTIONS;

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
        {
          cloud: options.cloud,
          enrollToken: options.enrollToken,
          caPem: options.ca ? await readFile(options.ca, 'utf8') : undefined,
          devices: numberOption(options.devices, '--devices', 0),
          durationS: numberOption(options.duration, '--duration', 0),
          telemetryIntervalS: numberOption(options.interval, '--interval', 0),
          recordsPerBatch: numberOption(options.recordsPerBatch, '--records-per-batch', 0),
          rampS: numberOption(options.ramp, '--ramp', 0),
          enrollConcurrency: numberOption(options.enrollConcurrency, '--enroll-concurrency', 0),
          latencyMedianMs: numberOption(options.latencyMs, '--latency-ms', 0),
          seed: numberOption(options.seed, '--seed', 0),
          namePrefix: options.namePrefix,
        },
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
