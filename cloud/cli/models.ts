import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';
import type { ModelRecord } from '../fleet/inventory/models.js';
import { callApi, printResult, withApiOptions } from './api-client.js';

export function register(program: Command): void {
  const models = program.command('models').description('register and list models');
  withApiOptions(models.command('add <file>'))
    .description('upload an ONNX model to the cloud (stored by content hash)')
    .option('--name <name>', 'model name (default: file name)')
    .option('--variant <variant>', 'variant label, e.g. fp32, int8', 'fp32')
    .option('--json', 'print the registered model as JSON')
    .action(async (file: string, options) => {
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch {
        throw new FleetError('FILE_NOT_FOUND', `cannot read ${file}`);
      }
      const name = options.name ?? basename(file).replace(/\.onnx$/, '');
      const query = new URLSearchParams({ name, variant: options.variant });
      const model = await callApi<ModelRecord>(
        options,
        'POST',
        `/api/models?${query}`,
        bytes,
        'application/octet-stream',
      );
      printResult(
        options.json,
        model,
        () =>
          `registered ${model.id} (${model.name}, ${model.variant}, ${model.size} bytes, sha256 ${model.sha256})`,
      );
    });
  withApiOptions(models.command('list'))
    .description('list registered models')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const { models: list } = await callApi<{ models: ModelRecord[] }>(options, 'GET', '/api/models');
      printResult(
        options.json,
        { models: list },
        () => list.map((m) => `${m.id}  ${m.name}  ${m.variant}  ${m.size} bytes`).join('\n') || 'no models',
      );
    });
}
