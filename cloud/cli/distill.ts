import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';
import { numberOption } from './number-option.js';

interface DistillCliOptions {
  spin?: boolean;
  teacher: string;
  data: string;
  labels?: string;
  student: string;
  epochs: string;
  batch: string;
  temperature: string;
  alpha: string;
  optimizer: string;
  lr?: string;
  seed: string;
  valData?: string;
  valLabels?: string;
  output: string;
  json?: boolean;
  shift: string;
  patience: string;
  schedule: string;
  warmup: string;
  stepsPerRun: string;
  threads: string;
  checkpointDir?: string;
  soft?: boolean;
}

const number = (value: string, flag: string, min?: number) => numberOption(value, flag, min);

export function register(program: Command): void {
  program
    .command('distill')
    .description('Train a small student from an ONNX teacher (knowledge distillation on onnxruntime)')
    .requiredOption('--teacher <t.onnx>', 'teacher model')
    .requiredOption('--data <x.npy>', "training inputs (.npy, [N, ...]) or the built-in 'mnist'")
    .option(
      '--labels <y.npy>',
      'training labels (.npy of integers); without them the loss is soft targets only',
    )
    .requiredOption(
      '--student <spec>',
      "shrink:<width> (the teacher's own graph, channels narrowed) | mlp:<h1>,<h2>,... | mlp@<params> | cnn:<c1>,<c2>,... | student.onnx",
    )
    .option('--epochs <n>', 'passes over the data', '10')
    .option('--batch <b>', 'samples per step', '128')
    .option('--temperature <t>', 'softmax temperature of the soft targets', '4')
    .option('--alpha <a>', 'weight of the soft-target term (1 - alpha weighs the labels)', '0.9')
    .option('--optimizer <name>', 'sgd | adam | adamw', 'sgd')
    .option('--lr <l>', 'learning rate (default 0.05 for sgd, 0.001 for adam)')
    .option('--seed <s>', 'seed of initialisation, shuffling, augmentation and dropout', '0')
    .option('--val-data <x.npy>', 'validation inputs')
    .option('--val-labels <y.npy>', 'validation labels')
    .option('--shift <px>', 'random shift augmentation in pixels (teacher runs on the fly)', '0')
    .option('--patience <epochs>', 'early stopping after this many epochs without improvement (0 = off)', '0')
    .option('--schedule <kind>', 'learning-rate schedule: constant | cosine | step', 'cosine')
    .option('--warmup <steps>', 'linear warm-up steps', '0')
    .option('--steps-per-run <k>', 'training steps per onnxruntime call', '16')
    .option(
      '--spin',
      'let onnxruntime threads spin: fastest on a dedicated machine, slower when the cores are shared',
    )
    .option('--threads <n>', 'onnxruntime intra-op threads (0 = all cores)', '0')
    .option('--checkpoint-dir <dir>', 'write the student after every epoch here')
    .requiredOption('-o, --output <student.onnx>', 'where to write the trained student')
    .option('--json', 'print one JSON object with the results on stdout')
    .action(async (opts: DistillCliOptions) => {
      const { runDistill } = await import('../compression/distill/run.js');
      const optimizer = opts.optimizer as 'sgd' | 'adam' | 'adamw';
      if (!['sgd', 'adam', 'adamw'].includes(optimizer)) {
        throw new FleetError(
          'INPUT_INVALID',
          `--optimizer must be sgd, adam or adamw, got ${opts.optimizer}`,
        );
      }
      const schedule = opts.schedule as 'constant' | 'cosine' | 'step';
      if (!['constant', 'cosine', 'step'].includes(schedule)) {
        throw new FleetError(
          'INPUT_INVALID',
          `--schedule must be constant, cosine or step, got ${opts.schedule}`,
        );
      }
      const alpha = number(opts.alpha, '--alpha', 0);
      if (alpha > 1) throw new FleetError('INPUT_INVALID', `--alpha must be in [0, 1], got ${opts.alpha}`);
      const result = await runDistill({
        teacher: opts.teacher,
        data: opts.data,
        labels: opts.labels,
        student: opts.student,
        valData: opts.valData,
        valLabels: opts.valLabels,
        output: opts.output,
        progress: !opts.json || process.stderr.isTTY,
        train: {
          epochs: number(opts.epochs, '--epochs', 1),
          batch: number(opts.batch, '--batch', 1),
          seed: number(opts.seed, '--seed', 0),
          shift: number(opts.shift, '--shift', 0),
          patience: number(opts.patience, '--patience', 0),
          stepsPerRun: number(opts.stepsPerRun, '--steps-per-run', 1),
          intraOpThreads: number(opts.threads, '--threads', 0),
          allowSpinning: Boolean(opts.spin),
          checkpointDir: opts.checkpointDir,
          loss: { temperature: number(opts.temperature, '--temperature', Number.MIN_VALUE), alpha },
          optimizer: { kind: optimizer, lr: opts.lr === undefined ? undefined : number(opts.lr, '--lr', 0) },
          schedule: { kind: schedule, warmupSteps: number(opts.warmup, '--warmup', 0) },
        },
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } else {
        const pct = (v: number | null) => (v === null ? 'n/a' : `${(v * 100).toFixed(2)} %`);
        process.stdout.write(
          `wrote ${opts.output}: ${result.parameters} parameters, ${result.bytes} bytes; accuracy ${pct(result.accuracy)}, ` +
            `agreement ${pct(result.agreement)}, ${Math.round(result.samplesPerSecond)} samples/s\n`,
        );
      }
    });
}
