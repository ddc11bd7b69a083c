import type { Command } from 'commander';
import type { DistillSummary } from '../compression/distill/run.js';
import type { DistillCliOptions } from './distill-options.js';

export function register(program: Command): void {
  program
    .command('distill')
    .description('Train a small student from an ONNX teacher (knowledge distillation on onnxruntime)')
    .requiredOption('--teacher <t.onnx>', 'teacher model')
    .requiredOption(
      '--data <x.npy|dir>',
      "training inputs: .npy [N, ...], a folder of PNG/JPEG images, or the built-in 'mnist'",
    )
    .option('--image-size <WxH>', "images: resize to this size (default: the teacher's input size)")
    .option(
      '--image-mean <m[,m,m]>',
      'images: per-channel mean subtracted after scaling to [0, 1] (default 0)',
    )
    .option('--image-std <s[,s,s]>', 'images: per-channel divisor after the mean (default 1)')
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
    .option(
      '--task <kind>',
      'classes | sequence ([N, T, C], per-timestep soft targets) | dense ([N, C, H, W] maps, per-pixel); default from the teacher output shape',
    )
    .option(
      '--blank-weight <w>',
      'sequences: weight of timesteps the teacher reads as the CTC blank (class 0), relative to 1 for characters',
      '1',
    )
    .option(
      '--hard-weight <w>',
      "weight of an added hard-label term: for sequences the cross-entropy to the teacher's argmax class per timestep (blank timesteps weighted by --blank-weight); for sigmoid maps the BCE against the teacher's map binarised at 0.3",
      '0',
    )
    .option('--checkpoint-dir <dir>', 'write the student after every epoch here')
    .requiredOption('-o, --output <student.onnx>', 'where to write the trained student')
    .option('--json', 'print one JSON object with the results on stdout')
    .action(async (opts: DistillCliOptions) => {
      const { runDistill } = await import('../compression/distill/run.js');
      const { distillRequest } = await import('./distill-options.js');
      const result = await runDistill(distillRequest(opts));
      process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : summaryLine(result));
    });
}

/** The human summary of a distillation; says plainly when nothing was validated. */
export function summaryLine(
  result: Pick<
    DistillSummary,
    'output' | 'parameters' | 'bytes' | 'accuracy' | 'agreement' | 'samplesPerSecond'
  >,
): string {
  const pct = (v: number) => `${(v * 100).toFixed(2)} %`;
  const scores: string[] = [];
  if (result.accuracy !== null) scores.push(`accuracy ${pct(result.accuracy)}`);
  if (result.agreement !== null) scores.push(`agreement ${pct(result.agreement)}`);
  const validated = scores.length
    ? scores.join(', ')
    : 'accuracy and agreement not measured (no validation data: give --val-data)';
  return `wrote ${result.output}: ${result.parameters} parameters, ${result.bytes} bytes; ${validated}, ${Math.round(result.samplesPerSecond)} samples/s\n`;
}
