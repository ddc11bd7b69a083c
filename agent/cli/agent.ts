import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';
import { AGENT_DEFAULTS, type AgentConfigInput } from '../config.js';

const d = AGENT_DEFAULTS;
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** What `agent start` parses (commander camel-cases the flags). */
export type StartFlags = Record<string, string | string[] | boolean | undefined>;

/** `agent start` flags as a config layer (undefined = not given: env, file and defaults apply). */
export function startFlagsToConfig(flags: StartFlags): AgentConfigInput & { config?: string } {
  return {
    config: flags.config as string | undefined,
    cloudUrl: flags.cloud,
    enrollToken: flags.enrollToken,
    caFile: flags.ca,
    fleetKey: flags.fleetKey,
    dataDir: flags.dataDir,
    telemetryIntervalS: flags.telemetryInterval,
    ep: flags.ep,
    intraOpThreads: flags.threads,
    blockSize: flags.blockSize,
    brokerMaxPayloadBytes: flags.brokerMaxPayload,
    windowBlocks: flags.window,
    benchRuns: flags.benchRuns,
    benchWarmupRuns: flags.benchWarmup,
    benchBudgetMs: flags.benchBudget,
    outboxMaxRecords: flags.outboxMax,
    minFreeDiskBytes: flags.minFreeDisk,
    modelCheckTimeoutMs: flags.modelCheckTimeout,
    latencyProbeRuns: flags.probeRuns,
    telemetryAck: flags.telemetryAck,
    factsRoot: flags.factsRoot,
    onnxruntimePath: flags.onnxruntime,
    serve: flags.serve,
    serveHost: flags.serveHost,
    servePort: flags.servePort,
    serveSocket: flags.serveSocket,
    serveToken: flags.serveToken,
    serveMaxBodyBytes: flags.serveMaxBody,
    serveBatching: flags.serveBatch,
    activationHook: flags.activationHook,
    logLevel: flags.logLevel,
    logFormat: flags.logFormat,
    name: flags.name,
  };
}

/** `fleetml agent start`: the device daemon. Every option also reads from FLEETML_* and a config file. */
export function register(program: Command): void {
  const agent =
    program.commands.find((c) => c.name() === 'agent') ??
    program.command('agent').description('the device agent');
  agent
    .command('start')
    .description(
      'run the agent: enroll (once), keep the device on its target model, report benchmarks and telemetry.\n' +
        'Options fall back to env FLEETML_<KEY> (e.g. FLEETML_CLOUD_URL, FLEETML_TELEMETRY_INTERVAL_S), then to the\n' +
        'JSON config file (--config / FLEETML_CONFIG, keys as in agent/config.ts), then to the defaults shown.',
    )
    .option(
      '--cloud <mqtt-url>',
      'MQTT URL of the cloud broker, e.g. mqtt://localhost:1883 (env FLEETML_CLOUD_URL)',
    )
    .option('--enroll-token <token>', 'one-time enrollment token; needed until the device is enrolled')
    .option('--config <file>', 'JSON config file (env FLEETML_CONFIG)')
    .option(
      '--ca <file>',
      'fleet CA certificate (PEM) to pin for mqtts:// (printed by `fleetml tokens enroll`)',
    )
    .option(
      '--fleet-key <key>',
      "the fleet's signing public key (base64) or its fingerprint, pinned out of band; optional with a token from `fleetml tokens enroll` (env FLEETML_FLEET_KEY)",
    )
    .option('--data-dir <dir>', `identity, state, model slots, outbox (default ${d.dataDir})`)
    .option('--telemetry-interval <s>', `seconds between telemetry samples (default ${d.telemetryIntervalS})`)
    .option(
      '--ep <ep>',
      `execution provider: auto|cpu|cuda|tensorrt (default ${d.ep}: TensorRT -> CUDA -> CPU)`,
    )
    .option('--threads <n>', `onnxruntime intra-op threads, 0 = its choice (default ${d.intraOpThreads})`)
    .option('--block-size <bytes>', `transfer block size cap in bytes (default ${d.blockSize})`)
    .option(
      '--broker-max-payload <bytes>',
      `broker payload limit; blocks stay under it (default ${d.brokerMaxPayloadBytes})`,
    )
    .option('--window <blocks>', `transfer blocks in flight (default ${d.windowBlocks})`)
    .option('--bench-runs <n>', `timed benchmark runs (default ${d.benchRuns})`)
    .option('--bench-warmup <n>', `benchmark warm-up runs (default ${d.benchWarmupRuns})`)
    .option('--bench-budget <ms>', `benchmark time budget in ms (default ${d.benchBudgetMs})`)
    .option('--outbox-max <records>', `telemetry records kept while offline (default ${d.outboxMaxRecords})`)
    .option(
      '--min-free-disk <bytes>',
      `disk space kept free beyond a download (default ${d.minFreeDiskBytes})`,
    )
    .option(
      '--model-check-timeout <ms>',
      `kill the isolated load-and-run check of a new model after this many ms, 0 = no isolation (default ${d.modelCheckTimeoutMs})`,
    )
    .option(
      '--probe-runs <n>',
      `inferences of the active model per telemetry sample for latency, 0 = off (default ${d.latencyProbeRuns})`,
    )
    .option(
      '--telemetry-ack <mode>',
      `cloud|broker|auto: what lets telemetry leave the outbox (default ${d.telemetryAck})`,
    )
    .option(
      '--facts-root <dir>',
      'read board facts (proc/cpuinfo, proc/device-tree/model, etc/nv_tegra_release) under this directory instead of / (env FLEETML_FACTS_ROOT)',
    )
    .option(
      '--onnxruntime <path>',
      'a user-supplied onnxruntime: an onnxruntime-node package directory or a libonnxruntime.so with CUDA/TensorRT providers (Jetson; env FLEETML_ONNXRUNTIME_PATH)',
    )
    .option('--serve', 'run the local inference service (Open Inference Protocol v2; the default)')
    .option('--no-serve', 'do not run the local inference service (env FLEETML_SERVE=false)')
    .option(
      '--serve-host <address>',
      `address the inference service listens on; beyond loopback it needs --serve-token (default ${d.serveHost})`,
    )
    .option('--serve-port <port>', `inference service TCP port, 0 = any free one (default ${d.servePort})`)
    .option('--serve-socket <path>', 'also listen on this Unix socket (default: none)')
    .option(
      '--serve-token <token>',
      'bearer token every inference request must carry (env FLEETML_SERVE_TOKEN; default: none)',
    )
    .option(
      '--serve-max-body <bytes>',
      `largest inference request body in bytes (default ${d.serveMaxBodyBytes})`,
    )
    .option(
      '--serve-batch <model=max[:delayMs]>',
      'dynamic batching for a model (repeatable; * = every model): merge concurrent requests into runs of at most max rows, waiting at most delayMs (default 2) for each other (default: off)',
      collect,
    )
    .option(
      '--activation-hook <command>',
      'shell command run after each model activation, given FLEETML_MODEL_NAME, FLEETML_MODEL_PATH, ... (default: none)',
    )
    .option('--log-level <level>', `trace|debug|info|warn|error (default ${d.logLevel})`)
    .option(
      '--log-format <format>',
      `auto|pretty|json: auto is readable on a terminal, JSON when piped (default ${d.logFormat})`,
    )
    .option('--name <name>', 'device name sent at enrollment (default: the hostname)')
    .action(async (flags: StartFlags) => {
      const { loadConfig } = await import('../config.js');
      const { startAgent } = await import('../main.js');
      const config = await loadConfig(startFlagsToConfig(flags));
      const handle = await startAgent({ config });
      await new Promise<void>((resolve) => {
        const onSignal = () => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          handle.stop().finally(resolve);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });

  agent
    .command('enroll')
    .description('enroll this device once and exit (identity goes to <data-dir>/identity.json, mode 600)')
    .option('--cloud <mqtt-url>', 'MQTT URL of the cloud broker (env FLEETML_CLOUD_URL)')
    .option('--enroll-token <token>', 'one-time enrollment token (env FLEETML_ENROLL_TOKEN)')
    .option('--config <file>', 'JSON config file (env FLEETML_CONFIG)')
    .option(
      '--ca <file>',
      'fleet CA certificate (PEM) to pin for mqtts:// (printed by `fleetml tokens enroll`)',
    )
    .option(
      '--fleet-key <key>',
      "the fleet's signing public key (base64) or its fingerprint (env FLEETML_FLEET_KEY)",
    )
    .option('--data-dir <dir>', `where the identity is written (default ${d.dataDir})`)
    .option(
      '--facts-root <dir>',
      'read board facts (proc/cpuinfo, proc/device-tree/model, etc/nv_tegra_release) under this directory instead of / (env FLEETML_FACTS_ROOT)',
    )
    .option('--timeout <s>', 'give up after this many seconds', '300')
    .option('--json', 'print {deviceId} on stdout')
    .action(async (flags: Record<string, string | boolean | undefined>) => {
      const timeoutS = Number(flags.timeout);
      if (!Number.isFinite(timeoutS) || timeoutS <= 0) {
        throw new FleetError(
          'INPUT_INVALID',
          `--timeout must be a number of seconds > 0, got '${flags.timeout}'`,
        );
      }
      const { loadConfig } = await import('../config.js');
      const { loadIdentity } = await import('../enroll.js');
      const { enrollDevice } = await import('../startup.js');
      const { configureOnnxruntime, detectExecutionProviders } = await import('../runtime/ort.js');
      const { resolveOnnxruntime } = await import('../runtime/onnxruntime-source.js');
      const { createLogger } = await import('../../shared/logger.js');
      const config = await loadConfig({
        config: flags.config as string | undefined,
        cloudUrl: flags.cloud,
        enrollToken: flags.enrollToken,
        caFile: flags.ca,
        fleetKey: flags.fleetKey,
        dataDir: flags.dataDir,
        factsRoot: flags.factsRoot,
      });
      const { mkdir } = await import('node:fs/promises');
      const { loadPinnedCa } = await import('../tls.js');
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
      const caPem = await loadPinnedCa(config);
      const logger = createLogger({ name: 'agent', level: config.logLevel, destination: process.stderr });
      let identity = await loadIdentity(config.dataDir);
      if (identity) {
        logger.info({ deviceId: identity.deviceId }, 'already enrolled');
      } else {
        const { join } = await import('node:path');
        configureOnnxruntime({
          source: await resolveOnnxruntime(config.onnxruntimePath, join(config.dataDir, 'onnxruntime')),
        });
        const probe = await detectExecutionProviders();
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), timeoutS * 1000);
        identity = await enrollDevice(config, caPem, probe.available, logger, abort.signal);
        clearTimeout(timer);
      }
      if (flags.json) process.stdout.write(`${JSON.stringify({ deviceId: identity.deviceId })}\n`);
      // The MQTT client and timers are closed; nothing else should keep the process alive.
      process.exitCode = 0;
    });

  agent
    .command('providers')
    .description(
      'list the execution providers that load here (a tiny session on each) and why the others do not',
    )
    .option(
      '--onnxruntime <path>',
      'probe a user-supplied onnxruntime (package directory or libonnxruntime.so)',
    )
    .option(
      '--work-dir <dir>',
      'where a libonnxruntime.so is set up for loading',
      '.fleetml/agent/onnxruntime',
    )
    .option('--json', 'print the probe as JSON')
    .action(async (flags: { onnxruntime?: string; workDir: string; json?: boolean }) => {
      const { configureOnnxruntime, detectExecutionProviders } = await import('../runtime/ort.js');
      const { resolveOnnxruntime } = await import('../runtime/onnxruntime-source.js');
      configureOnnxruntime({ source: await resolveOnnxruntime(flags.onnxruntime ?? '', flags.workDir) });
      const probe = await detectExecutionProviders();
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(probe)}\n`);
        return;
      }
      process.stdout.write(`onnxruntime: ${probe.onnxruntime.kind} ${probe.onnxruntime.path}\n`);
      process.stdout.write(`loaded: ${probe.available.join(', ') || 'none'}\n`);
      for (const [ep, why] of Object.entries(probe.failures))
        process.stdout.write(`${ep}: not loaded: ${why}\n`);
      if (probe.hint) process.stdout.write(`${probe.hint}\n`);
    });
}
