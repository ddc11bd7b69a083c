import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { callApi, printResult, withApiOptions } from './api-client.js';

interface DeviceSummary {
  id: string;
  name: string;
  online: boolean;
  phase: string | null;
  activeModel: { id: string; name: string } | null;
  p50Ms: number | null;
  p99Ms: number | null;
}

const fmt = (v: number | null) => (v === null ? '-' : v.toFixed(2));

export function register(program: Command): void {
  withApiOptions(program.command('devices'))
    .description('list devices with status, active model and latest latency')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const { devices } = await callApi<{ devices: DeviceSummary[] }>(options, 'GET', '/api/devices');
      printResult(options.json, { devices }, () =>
        devices.length === 0
          ? 'no devices'
          : devices
              .map(
                (d) =>
                  `${d.id}  ${d.online ? 'online ' : 'offline'}  ${d.phase ?? '-'}  ${d.activeModel?.name ?? '-'}  p50 ${fmt(d.p50Ms)} ms  p99 ${fmt(d.p99Ms)} ms`,
              )
              .join('\n'),
      );
    });
  withApiOptions(program.command('latency <device>'))
    .description("a device's benchmark and inference latency over a window")
    .option('--window <w>', 'time window, e.g. 15m, 24h, 7d', '24h')
    .option('--json', 'print JSON')
    .action(async (device: string, options) => {
      const result = await callApi<{
        bench: { p50Ms: number; p99Ms: number; ep: string } | null;
        series: unknown[];
      }>(
        options,
        'GET',
        `/api/devices/${encodeURIComponent(device)}/latency?window=${encodeURIComponent(options.window)}`,
      );
      printResult(options.json, result, () =>
        result.bench
          ? `benchmark p50 ${result.bench.p50Ms.toFixed(3)} ms, p99 ${result.bench.p99Ms.toFixed(3)} ms on ${result.bench.ep}; ${result.series.length} telemetry points`
          : `no benchmark yet; ${result.series.length} telemetry points`,
      );
    });
  const tokens = program.command('tokens').description('enrollment and API tokens');
  withApiOptions(tokens.command('enroll'))
    .description('create an enrollment token for new devices')
    .option('--ttl <seconds>', 'lifetime in seconds', '3600')
    .option('--uses <n>', 'how many devices may enroll with it', '1')
    .option('--ca-out <file>', "with a TLS broker: write the fleet CA here, for the agent's --ca")
    .option('--json', 'print JSON')
    .action(async (options) => {
      const result = await callApi<{
        token: string;
        expiresAt: string;
        brokerUrl: string;
        caPem: string | null;
      }>(options, 'POST', '/api/enroll-tokens', {
        ttlSeconds: Number(options.ttl),
        uses: Number(options.uses),
      });
      if (result.caPem && options.caOut) await writeFile(options.caOut, result.caPem);
      const caFlag = result.caPem && options.caOut ? ` --ca ${options.caOut}` : '';
      printResult(options.json, result, () =>
        [
          `token: ${result.token}`,
          `expires: ${result.expiresAt}`,
          `broker: ${result.brokerUrl}`,
          ...(result.caPem && !options.caOut
            ? ['ca: the broker uses TLS: add --ca-out <file> to save the fleet CA']
            : []),
          `agent: npx fleetml agent start --cloud ${result.brokerUrl} --enroll-token ${result.token}${caFlag}`,
        ].join('\n'),
      );
    });
}
