import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { callApi, printResult, withApiOptions } from './api-client.js';
import { numberOption } from './number-option.js';

interface DeviceSummary {
  id: string;
  name: string;
  online: boolean;
  phase: string | null;
  activeModel: { id: string; name: string } | null;
  p50Ms: number | null;
  p99Ms: number | null;
  tags: string[];
}

const fmt = (v: number | null) => (v === null ? '-' : v.toFixed(2));

const listLine = (d: DeviceSummary) =>
  `${d.id}  ${d.online ? 'online ' : 'offline'}  ${d.phase ?? '-'}  ${d.activeModel?.name ?? '-'}  p50 ${fmt(d.p50Ms)} ms  p99 ${fmt(d.p99Ms)} ms` +
  (d.tags.length ? `  tags ${d.tags.join(',')}` : '');

/**
 * `devices tag|untag <device> <tag...>`: subcommands of `devices`, which lists on its own. The
 * API options are declared once on `devices` (commander lets the parent take them wherever
 * they appear), so the subcommands read them merged with their own.
 */
function registerTagCommands(devices: Command): void {
  for (const [verb, field, what] of [
    ['tag', 'addTags', 'add tags to a device (deploy --tag selects by them)'],
    ['untag', 'removeTags', 'remove tags from a device'],
  ] as const) {
    devices
      .command(`${verb} <device> <tags...>`)
      .description(`${what}; prints the device's tags`)
      .action(async (device: string, tags: string[], _local: unknown, command: Command) => {
        const options = command.optsWithGlobals();
        const updated = await callApi<DeviceSummary>(
          options,
          'PATCH',
          `/api/devices/${encodeURIComponent(device)}`,
          { [field]: tags },
        );
        printResult(
          options.json,
          { id: updated.id, tags: updated.tags },
          () => `${updated.id}  tags ${updated.tags.join(',') || '(none)'}`,
        );
      });
  }
}

export function register(program: Command): void {
  const devices = withApiOptions(program.command('devices'))
    .description('list devices with status, active model, latest latency and tags; tag and untag them')
    .option('--tag <tag>', 'only devices with this tag')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const all = (await callApi<{ devices: DeviceSummary[] }>(options, 'GET', '/api/devices')).devices;
      const list = options.tag ? all.filter((d) => d.tags.includes(options.tag)) : all;
      printResult(options.json, { devices: list }, () =>
        list.length === 0 ? 'no devices' : list.map(listLine).join('\n'),
      );
    });
  registerTagCommands(devices);
  /** ` at x [1,3,48,192]`: the shape a benchmark describes, when the agent reported it. */
  const shapesText = (shapes: Record<string, number[]> | null) =>
    shapes && Object.keys(shapes).length > 0
      ? ` at ${Object.entries(shapes)
          .map(([name, dims]) => `${name} [${dims.join(',')}]`)
          .join(', ')}`
      : '';
  withApiOptions(program.command('latency <device>'))
    .description("a device's benchmark and inference latency over a window")
    .option('--window <w>', 'time window, e.g. 15m, 24h, 7d', '24h')
    .option('--json', 'print JSON')
    .action(async (device: string, options) => {
      const result = await callApi<{
        bench: {
          p50Ms: number;
          p99Ms: number;
          ep: string;
          inputShapes: Record<string, number[]> | null;
        } | null;
        series: unknown[];
      }>(
        options,
        'GET',
        `/api/devices/${encodeURIComponent(device)}/latency?window=${encodeURIComponent(options.window)}`,
      );
      printResult(options.json, result, () =>
        result.bench
          ? `benchmark p50 ${result.bench.p50Ms.toFixed(3)} ms, p99 ${result.bench.p99Ms.toFixed(3)} ms on ${result.bench.ep}${shapesText(result.bench.inputShapes)}; ${result.series.length} telemetry points`
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
        ttlSeconds: numberOption(options.ttl, '--ttl', 1),
        uses: numberOption(options.uses, '--uses', 1),
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
