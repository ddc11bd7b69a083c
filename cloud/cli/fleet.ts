import type { Command } from 'commander';
import type { FleetHealth } from '../fleet/monitoring/health.js';
import type { FleetLatency, LatencyGroup } from '../fleet/monitoring/latency.js';
import type { Regression } from '../fleet/monitoring/regressions.js';
import { callApi, printResult, withApiOptions } from './api-client.js';

// The API returns what the monitoring module computes; the latency route adds model names.
type LatencyReply = Omit<FleetLatency, 'groups'> & {
  groups: Array<LatencyGroup & { name?: string | null; variant?: string | null }>;
};
type RegressionReply = { regressions: Regression[] };
type HealthReply = FleetHealth;

const ms = (v: number | null) => (v === null ? '-' : v.toFixed(2));
const table = (rows: string[][]) => {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
};

/** `fleetml fleet latency|regressions|health`: fleet-wide monitoring from the cloud API. */
export function register(program: Command): void {
  const fleet = program.command('fleet').description('fleet-wide latency, regressions and health');

  withApiOptions(fleet.command('latency'))
    .description('p50/p90/p99 across the fleet per device, model version or profile')
    .option('--by <key>', 'group by device, model or profile', 'device')
    .option('--window <w>', 'time window, e.g. 15m, 24h, 7d', '24h')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const query = `by=${encodeURIComponent(options.by)}&window=${encodeURIComponent(options.window)}`;
      const result = await callApi<LatencyReply>(options, 'GET', `/api/fleet/latency?${query}`);
      printResult(options.json, result, () => {
        const label = (g: LatencyReply['groups'][number]) =>
          g.name ? `${g.key} (${g.name}${g.variant ? ` · ${g.variant}` : ''})` : g.key || '(no model)';
        const rows = [
          [result.by, 'devices', 'inferences', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
          ...[...result.groups, { key: 'fleet', ...result.fleet }].map((g) => [
            label(g),
            String(g.devices),
            String(g.count),
            ms(g.p50Ms),
            ms(g.p90Ms),
            ms(g.p99Ms),
            ms(g.maxMs),
          ]),
        ];
        return result.groups.length === 0 ? `no latency reported in the last ${options.window}` : table(rows);
      });
    });

  withApiOptions(fleet.command('regressions'))
    .description('devices and model versions whose p99 rose beyond the threshold')
    .option('--window <w>', 'current window', '1h')
    .option('--baseline <w>', 'baseline window before it', '24h')
    .option('--threshold <fraction>', 'flag a p99 rise above this fraction, e.g. 0.25')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const params = new URLSearchParams({ window: options.window, baseline: options.baseline });
      if (options.threshold) params.set('threshold', options.threshold);
      const result = await callApi<RegressionReply>(options, 'GET', `/api/fleet/regressions?${params}`);
      printResult(options.json, result, () =>
        result.regressions.length === 0
          ? 'no regressions'
          : table([
              ['kind', 'device', 'model', 'profile', 'p99 now', 'baseline', 'ratio'],
              ...result.regressions.map((r) => [
                r.kind,
                r.deviceId ?? '-',
                r.modelId ?? '-',
                r.profile ?? '-',
                ms(r.currentP99Ms),
                ms(r.baselineP99Ms),
                `${r.ratio.toFixed(2)}x`,
              ]),
            ]),
      );
    });

  withApiOptions(fleet.command('health'))
    .description('online / offline / stale devices, throttling and temperature')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const result = await callApi<HealthReply>(options, 'GET', '/api/fleet/health');
      printResult(options.json, result, () => {
        const c = result.counts;
        const head = `${c.total} devices: ${c.online} online, ${c.offline} offline, ${c.stale} stale, ${c.throttled} throttled`;
        const notable = result.devices.filter((d) => d.status !== 'online' || d.throttled);
        if (notable.length === 0) return head;
        return `${head}\n${table([
          ['device', 'status', 'profile', 'silent s', 'throttled', 'max °C'],
          ...notable.map((d) => [
            d.id,
            d.status,
            d.profile,
            d.silentForS === null ? '-' : String(d.silentForS),
            d.throttled ? 'yes' : 'no',
            d.tempMaxC === null ? '-' : d.tempMaxC.toFixed(1),
          ]),
        ])}`;
      });
    });
}
