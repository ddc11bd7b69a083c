import type { Command } from 'commander';

interface EvalFlags {
  data: string;
  labels?: string;
  reference?: string;
  batch: string;
  runs: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('Accuracy, agreement with a reference, output SNR/cosine, size and p50 latency of a model')
    .argument('<model>', '.onnx model to evaluate')
    .requiredOption('--data <x.npy>', 'inputs [N, ...] (.npy float32) or mnist:test')
    .option('--labels <y.npy>', 'integer labels [N]')
    .option('--reference <fp32.onnx>', 'reference model (same session options)')
    .option('--batch <n>', 'batch size of the latency measurement', '1')
    .option('--runs <n>', 'timed runs per model', '50')
    .option('--json', 'print one JSON object on stdout')
    .action(async (modelPath: string, flags: EvalFlags) => {
      const { readFile } = await import('node:fs/promises');
      const { FleetError } = await import('../../shared/errors/index.js');
      const { loadSamples } = await import('../compression/quantize/calibrate/data.js');
      const { evaluateModel } = await import('../compression/evaluate/evaluate.js');
      const { numberOption } = await import('./number-option.js');
      const latencyBatch = numberOption(flags.batch, '--batch', 1);
      const runs = numberOption(flags.runs, '--runs', 1);
      const read = async (p: string) => {
        try {
          return new Uint8Array(await readFile(p));
        } catch (error) {
          throw new FleetError('FILE_NOT_FOUND', `cannot read ${p}: ${(error as Error).message}`, {
            path: p,
          });
        }
      };
      process.stderr.write('evaluating...\n');
      const report = await evaluateModel(
        await read(modelPath),
        await loadSamples(flags.data, flags.labels),
        flags.reference ? await read(flags.reference) : undefined,
        { latencyBatch, latency: { runs } },
      );
      if (flags.json) process.stdout.write(`${JSON.stringify(report)}\n`);
      else {
        const m = report.model;
        const lines = [
          `samples      ${report.samples}`,
          `accuracy     ${m.accuracy?.toFixed(2) ?? '-'} %${report.reference?.accuracy !== undefined ? ` (reference ${report.reference.accuracy.toFixed(2)} %)` : ''}`,
          `agreement    ${report.agreement?.toFixed(2) ?? '-'} %`,
          `cosine       ${report.cosine?.toFixed(5) ?? '-'}   SNR ${report.snrDb?.toFixed(1) ?? '-'} dB`,
          `size         ${m.sizeBytes} bytes${report.sizeRatio ? ` (x${report.sizeRatio.toFixed(3)})` : ''}`,
          `latency p50  ${m.latencyMs?.toFixed(3)} ms${report.latencyRatio ? ` (x${report.latencyRatio.toFixed(3)} vs reference ${report.reference?.latencyMs?.toFixed(3)} ms)` : ''}`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
    });
}
