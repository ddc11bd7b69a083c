import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { CloudHandle, CloudOptions } from '../main.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SAMPLE_MODEL = resolve(HERE, '../samples/mnist-mlp.onnx');
const FLEETML_BIN = resolve(HERE, '../../bin/fleetml.mjs');

/** Starts on the preferred port, or on a free one when something else holds it. */
async function startOnFreePorts(
  start: (o: Partial<CloudOptions>) => Promise<CloudHandle>,
  http: number,
  mqtt: number,
) {
  try {
    return await start({ httpPort: http, mqttPort: mqtt });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    return await start({ httpPort: 0, mqttPort: 0 });
  }
}

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `preferred` when it is free on loopback, else a free port the system picks. */
function freePort(preferred: number): Promise<number> {
  const tryPort = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port }, () => {
        const { port: got } = server.address() as { port: number };
        server.close(() => resolve(got));
      });
    });
  return tryPort(preferred).catch(() => tryPort(0));
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'npm start: cloud with embedded broker and SQLite, one local agent, the sample model deployed to it',
    )
    .option('--data-dir <dir>', 'where the demo keeps its state', '.fleetml/demo')
    .option('--http-port <port>', 'console port (a free one if taken)', '8080')
    .option('--mqtt-port <port>', 'broker port (a free one if taken)', '1883')
    .option('--serve-port <port>', "the demo agent's inference port (a free one if taken)", '8000')
    .action(async (options) => {
      const { createLogger } = await import('../../shared/logger.js');
      const { startCloud } = await import('../main.js');
      const logger = createLogger({ name: 'cloud', level: process.env.FLEETML_LOG_LEVEL ?? 'warn' });
      const cloudDir = join(options.dataDir, 'cloud');
      const agentDir = join(options.dataDir, 'agent');
      // A fresh cloud database knows no device: the agent must enroll again.
      if (!existsSync(join(cloudDir, 'fleetml.db'))) await rm(agentDir, { recursive: true, force: true });

      const cloud = await startOnFreePorts(
        (ports) => startCloud({ dataDir: cloudDir, logger, ...ports }),
        Number(options.httpPort),
        Number(options.mqttPort),
      );
      const { token: enrollToken } = await cloud.services.issueEnrollToken({ ttlSeconds: 600 });
      const knownDevices = new Set((await cloud.services.devices.list()).map((d) => d.id));

      const servePort = await freePort(Number(options.servePort));
      const agent: ChildProcess = spawn(
        process.execPath,
        [
          FLEETML_BIN,
          'agent',
          'start',
          '--cloud',
          cloud.mqttUrl,
          '--enroll-token',
          enrollToken,
          '--data-dir',
          agentDir,
        ],
        {
          stdio: ['ignore', 'inherit', 'inherit'],
          env: {
            ...process.env,
            FLEETML_LOG_LEVEL: process.env.FLEETML_LOG_LEVEL ?? 'warn',
            FLEETML_SERVE: 'true',
            FLEETML_SERVE_HOST: '127.0.0.1',
            FLEETML_SERVE_PORT: String(servePort),
          },
        },
      );
      let stopping = false;
      const stop = async (code = 0) => {
        if (stopping) return;
        stopping = true;
        process.stdout.write('\nstopping…\n');
        agent.kill('SIGTERM');
        await new Promise((r) => (agent.exitCode === null ? agent.once('exit', r) : r(null)));
        await cloud.stop();
        process.exit(code);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
      agent.once('exit', (code) => {
        if (!stopping) {
          process.stderr.write(`agent exited with code ${code}\n`);
          void stop(1);
        }
      });

      const device = await waitFor('the agent to enroll', 60_000, async () => {
        const devices = await cloud.services.devices.list();
        return devices.find((d) => !knownDevices.has(d.id) && d.online) ?? devices.find((d) => d.online);
      });
      const model = await cloud.services.models.add(await readFile(SAMPLE_MODEL), {
        name: 'mnist-mlp',
        variant: 'fp32',
        // The sample's batch dim is symbolic: the demo serves one image at a time, so the agent
        // benchmarks at that shape instead of warning that it had to guess one.
        servingShapes: { '': [1, 1, 28, 28] },
      });
      const target = await cloud.services.targets.setModel(device.id, model);
      await cloud.services.audit.record('demo', 'deploy', { model: model.id, devices: [device.id] });

      process.stdout.write(
        [
          'fleetml is running.',
          `console: ${cloud.httpUrl}/#token=${encodeURIComponent(cloud.adminToken)}`,
          `api: ${cloud.httpUrl}/api`,
          `broker: ${cloud.mqttUrl}`,
          `token: ${cloud.adminToken}`,
          `device: ${device.id} (target version ${target.version}: ${model.name} ${model.id})`,
          `inference: http://127.0.0.1:${servePort}`,
          'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      );
      const bench = await waitFor(
        'the first benchmark',
        120_000,
        async () => (await cloud.services.telemetry.latestBench(device.id)) ?? undefined,
      ).catch(() => null);
      if (bench) {
        process.stdout.write(
          `benchmark on ${device.id}: p50 ${bench.p50Ms.toFixed(3)} ms, p99 ${bench.p99Ms.toFixed(3)} ms, ${bench.throughput.toFixed(0)}/s on ${bench.ep}\n`,
        );
      }
    });
}
