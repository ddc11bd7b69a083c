import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';
import type { ModelRecord } from '../fleet/inventory/models.js';
import { callApi, printResult, withApiOptions } from './api-client.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

const shapesText = (m: ModelRecord) =>
  m.servingShapes
    ? Object.entries(m.servingShapes)
        .map(([k, v]) => `${k}=${v.join(',')}`)
        .join(' ')
    : '';

function describeAdded(model: ModelRecord): string {
  const lines = [
    `registered ${model.id} (${model.name} release ${model.release}, ${model.variant}${model.sourceModelId ? ` of ${model.sourceModelId}` : ''}, ${model.size} bytes, sha256 ${model.sha256})`,
  ];
  if (model.servingShapes) lines.push(`serving shape: ${shapesText(model)}`);
  if (model.unresolvedDims.length > 0) {
    lines.push(
      `warning: symbolic dimensions without a serving shape (${model.unresolvedDims.join(', ')}): ` +
        'devices will benchmark at a guessed shape; upload again with --shape',
    );
  }
  return lines.join('\n');
}

export function register(program: Command): void {
  const models = program.command('models').description('register, list and remove models');
  withApiOptions(models.command('add <file>'))
    .description('upload an ONNX model to the cloud (stored by content hash)')
    .option('--name <name>', 'model name (default: file name, or the original of --variant-of)')
    .option('--variant <variant>', 'variant label, e.g. fp32, int8', 'fp32')
    .option('--variant-of <model-id>', 'the original model this file is a variant of (same release)')
    .option(
      '--shape <dims>',
      'serving shape for symbolic dimensions: 1,3,48,192, or per input x=1,3,48,192 (repeat per input)',
      collect,
    )
    .option('--json', 'print the registered model as JSON')
    .action(async (file: string, options) => {
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch {
        throw new FleetError('FILE_NOT_FOUND', `cannot read ${file}`);
      }
      let name: string = options.name;
      if (!name && options.variantOf) {
        name = (
          await callApi<ModelRecord>(options, 'GET', `/api/models/${encodeURIComponent(options.variantOf)}`)
        ).name;
      }
      const query = new URLSearchParams({
        name: name ?? basename(file).replace(/\.onnx$/, ''),
        variant: options.variant,
      });
      if (options.variantOf) query.set('variantOf', options.variantOf);
      for (const shape of (options.shape as string[] | undefined) ?? []) query.append('shape', shape);
      const model = await callApi<ModelRecord>(
        options,
        'POST',
        `/api/models?${query}`,
        bytes,
        'application/octet-stream',
      );
      printResult(options.json, model, () => describeAdded(model));
    });
  withApiOptions(models.command('list'))
    .description('list registered models')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const { models: list } = await callApi<{ models: ModelRecord[] }>(options, 'GET', '/api/models');
      printResult(
        options.json,
        { models: list },
        () =>
          list
            .map((m) =>
              `${m.id}  ${m.name}  r${m.release}  ${m.variant}${m.sourceModelId ? ` (of ${m.sourceModelId})` : ''}  ${m.size} bytes  ${shapesText(m) || (m.unresolvedDims.length ? `unresolved: ${m.unresolvedDims.join(',')}` : '')}`.trimEnd(),
            )
            .join('\n') || 'no models',
      );
    });
  withApiOptions(models.command('rm <model-id>'))
    .description('delete a model that no device, target or rollout uses (variants before their original)')
    .option('--json', 'print the removed model as JSON')
    .action(async (id: string, options) => {
      const model = await callApi<ModelRecord>(options, 'DELETE', `/api/models/${encodeURIComponent(id)}`);
      printResult(
        options.json,
        model,
        () => `removed ${model.id} (${model.name} release ${model.release}, ${model.variant})`,
      );
    });
}
