import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';
import { numberOption } from './number-option.js';

/** `--profiles file.json`: an array of profiles; a missing or malformed file is a coded error. */
async function readProfiles(
  path: string,
  read: (p: string, e: 'utf8') => Promise<string>,
): Promise<unknown[]> {
  let text: string;
  try {
    text = await read(path, 'utf8');
  } catch (error) {
    throw new FleetError('FILE_NOT_FOUND', `cannot read --profiles ${path}: ${(error as Error).message}`, {
      path,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FleetError('INPUT_INVALID', `--profiles ${path} is not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(value))
    throw new FleetError('INPUT_INVALID', `--profiles ${path} must hold an array of profiles`);
  return value;
}

export function register(program: Command): void {
  program
    .command('compress')
    .description(
      'make the variants a device profile calls for (INT8, FP16, a distilled student, the student in INT8),\nmeasure each against the original and write them with report.json',
    )
    .argument('<model>', 'the FP32 .onnx model')
    .requiredOption(
      '--profile <name>',
      'device profile (rpi4, rpi5, jetson-orin-nano, x86-vnni, x86-avx2, or your own)',
    )
    .requiredOption(
      '--data <x.npy>',
      'inputs [N, ...] (.npy float32) or mnist; 20 % is held out for evaluation',
    )
    .option('--labels <y.npy>', 'labels [N] for accuracy (integers)')
    .option('--max-accuracy-drop <points>', 'largest accepted top-1 drop against the original', '1')
    .option('--latency-ms <ms>', "latency objective at batch 1 (default: the profile's)")
    .option('--student <template>', "student instead of the planner's choice, e.g. mlp:256,256 or cnn:8,16")
    .option('--epochs <n>', 'distillation epochs', '8')
    .option(
      '--variants <list>',
      "variants to build among the profile's, comma-separated: int8,fp16,student,student-int8 (default: all it plans)",
    )
    .option('--profiles <file>', 'JSON file with extra device profiles (an array)')
    .requiredOption('-o, --output <dir>', 'directory for the variants and report.json')
    .option('--progress-json', 'progress as JSON lines on stderr (for the cloud job runner)')
    .option('--json', 'print the report as one JSON object on stdout')
    .action(async (model: string, options) => {
      if (process.send && process.channel) {
        // Started by the cloud's job runner with an IPC channel: a job must not outlive its
        // replica (after a kill -9 another replica runs it again), so end with the channel.
        process.on('disconnect', () => process.exit(1));
        process.channel.unref();
      }
      const { readFile, writeFile } = await import('node:fs/promises');
      const { join } = await import('node:path');
      const { ProfileRegistry } = await import('../compression/profiles/registry.js');
      const { runCompression } = await import('../compression/pipeline/pipeline.js');
      const extra = options.profiles ? await readProfiles(options.profiles, readFile) : [];
      const profile = new ProfileRegistry(extra).get(options.profile);
      const number = (v: string | undefined, flag: string) => numberOption(v, flag, 0);
      let lastStage = '';
      const report = await runCompression({
        model,
        profile,
        data: options.data,
        labels: options.labels,
        maxAccuracyDrop: number(options.maxAccuracyDrop, '--max-accuracy-drop'),
        latencyMs: number(options.latencyMs, '--latency-ms'),
        student: options.student,
        epochs: number(options.epochs, '--epochs'),
        variants: options.variants
          ? String(options.variants)
              .split(',')
              .map((v) => v.trim())
              .filter(Boolean)
          : undefined,
        outDir: options.output,
        onProgress: (stage, fraction) => {
          if (options.progressJson)
            process.stderr.write(`${JSON.stringify({ progress: fraction, stage })}\n`);
          else if (stage !== lastStage)
            process.stderr.write(`[${(fraction * 100).toFixed(0).padStart(3)} %] ${stage}\n`);
          lastStage = stage;
        },
      });
      await writeFile(join(options.output, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
        return;
      }
      const pad = (s: string, n: number) => s.padEnd(n);
      const fmt = (v: number | null, d = 2) => (v === null ? '-' : v.toFixed(d));
      const verdict = (v: (typeof report.variants)[number]) =>
        v.status !== 'ok'
          ? `${v.status} ${v.error?.code}: ${v.error?.message}`
          : !v.accepted
            ? 'no'
            : v.verdict === 'not-faster'
              ? 'not faster'
              : 'yes';
      const decided = (v: (typeof report.variants)[number]) => {
        const d = v.int8Decision;
        if (!d) return '-';
        return d === 'rules' ? 'rules' : `${d.form} (measured)`;
      };
      const basis =
        report.recommendationBasis === 'provisional'
          ? ` (provisional: measured on this ${report.measuredOn}; devices of ${report.profile} decide once they report)`
          : '';
      const lines = [
        `latencies measured on this ${report.measuredOn}; INT8 decisions for ${report.profile}: ${report.int8Decisions}`,
        `${pad('variant', 14)}${pad('size', 12)}${pad('size×', 8)}${pad('acc %', 8)}${pad('agree %', 9)}${pad('p50 ms', 9)}${pad('lat×', 7)}${pad('INT8 form', 22)}ok`,
        ...report.variants.map(
          (v) =>
            `${pad(v.name, 14)}${pad(String(v.sizeBytes ?? '-'), 12)}${pad(fmt(v.sizeRatio, 3), 8)}${pad(fmt(v.accuracy), 8)}${pad(fmt(v.agreement), 9)}${pad(fmt(v.latencyMs, 3), 9)}${pad(fmt(v.latencyRatio, 3), 7)}${pad(decided(v), 22)}${verdict(v)}`,
        ),
        `recommended for ${report.profile}: ${report.recommended ?? 'none within the budget'}${report.recommended ? basis : ''}`,
        `wrote ${join(options.output, 'report.json')}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
