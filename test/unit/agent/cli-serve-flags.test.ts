import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { register, startFlagsToConfig } from '../../../agent/cli/agent.js';
import { resolveConfig } from '../../../agent/config.js';

// Each serving flag of `fleetml agent start` lands in the config key the inference service is
// built from (test/integration/cli/agent-serve-flags.test.ts checks the running service).
function configOf(argv: string[], env: Record<string, unknown> = {}) {
  const program = new Command('fleetml');
  register(program);
  const start = program.commands
    .find((c) => c.name() === 'agent')!
    .commands.find((c) => c.name() === 'start')!;
  start.parseOptions(['--cloud', 'mqtt://localhost:1883', ...argv]);
  return resolveConfig(env, startFlagsToConfig(start.opts()));
}

describe('agent start serving flags', () => {
  it('map onto the serve* config keys', () => {
    const config = configOf([
      '--serve-host',
      '0.0.0.0',
      '--serve-port',
      '8123',
      '--serve-socket',
      '/tmp/x.sock',
      '--serve-token',
      'tok',
      '--serve-max-body',
      '1024',
      '--serve-batch',
      'mnist-mlp=8:2',
      '--serve-batch',
      '*=4',
      '--activation-hook',
      'echo hi',
    ]);
    expect(config).toMatchObject({
      serve: true,
      serveHost: '0.0.0.0',
      servePort: 8123,
      serveSocket: '/tmp/x.sock',
      serveToken: 'tok',
      serveMaxBodyBytes: 1024,
      serveBatching: {
        'mnist-mlp': { maxBatch: 8, maxQueueDelayMs: 2 },
        '*': { maxBatch: 4, maxQueueDelayMs: 2 },
      },
      activationHook: 'echo hi',
    });
  });

  it('--no-serve turns the service off; without either flag the lower layers decide', () => {
    expect(configOf(['--no-serve']).serve).toBe(false);
    expect(configOf([], { serve: 'false' }).serve).toBe(false);
    expect(configOf(['--serve'], { serve: 'false' }).serve).toBe(true);
    expect(configOf([]).serve).toBe(true);
    expect(configOf([]).serveBatching).toEqual({});
  });

  it('a malformed --serve-batch is CONFIG_INVALID naming the key', () => {
    expect(() => configOf(['--serve-batch', 'mnist-mlp'])).toThrow(
      /serveBatching \(FLEETML_SERVE_BATCHING\)/,
    );
  });

  it('every other flag of agent start maps onto its config key (docs/claims.md)', () => {
    const config = configOf([
      ...['--enroll-token', 'enr_x', '--ca', '/ca.pem', '--fleet-key', 'K', '--data-dir', '/var/lib/f'],
      ...['--telemetry-interval', '5', '--ep', 'cpu', '--threads', '2', '--block-size', '32768'],
      ...['--broker-max-payload', '65536', '--window', '4', '--bench-runs', '20', '--bench-warmup', '3'],
      ...['--bench-budget', '900', '--outbox-max', '500', '--min-free-disk', '1048576'],
      ...['--model-check-timeout', '5000', '--probe-runs', '3', '--telemetry-ack', 'broker'],
      ...['--facts-root', '/fx', '--onnxruntime', '/ort', '--log-level', 'debug', '--log-format', 'json'],
      ...['--name', 'pi-kitchen'],
    ]);
    expect(config).toMatchObject({
      cloudUrl: 'mqtt://localhost:1883',
      enrollToken: 'enr_x',
      caFile: '/ca.pem',
      fleetKey: 'K',
      dataDir: '/var/lib/f',
      telemetryIntervalS: 5,
      ep: 'cpu',
      intraOpThreads: 2,
      blockSize: 32768,
      brokerMaxPayloadBytes: 65536,
      windowBlocks: 4,
      benchRuns: 20,
      benchWarmupRuns: 3,
      benchBudgetMs: 900,
      outboxMaxRecords: 500,
      minFreeDiskBytes: 1048576,
      modelCheckTimeoutMs: 5000,
      latencyProbeRuns: 3,
      telemetryAck: 'broker',
      factsRoot: '/fx',
      onnxruntimePath: '/ort',
      logLevel: 'debug',
      logFormat: 'json',
      name: 'pi-kitchen',
    });
    expect(() => configOf(['--telemetry-ack', 'never'])).toThrow(/telemetryAck/);
  });
});
