import type { Command } from 'commander';
import { callApi, printResult, withApiOptions } from './api-client.js';

export function register(program: Command): void {
  withApiOptions(program.command('deploy <model>'))
    .description(
      'set the target model of one or more devices (they download, verify, benchmark and activate it)',
    )
    .requiredOption('--to <devices>', 'comma-separated device ids')
    .option('--json', 'print JSON')
    .action(async (model: string, options) => {
      const devices = String(options.to)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const result = await callApi<{ model: string; targets: Array<{ deviceId: string; version: number }> }>(
        options,
        'POST',
        '/api/deployments',
        { model, devices },
      );
      printResult(options.json, result, () =>
        result.targets.map((t) => `${t.deviceId}: target version ${t.version} -> ${result.model}`).join('\n'),
      );
    });
}
