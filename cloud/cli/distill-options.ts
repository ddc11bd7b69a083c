import { FleetError } from '../../shared/errors/index.js';
import type { DistillRequest } from '../compression/distill/run.js';
import { numberOption } from './number-option.js';

/** The flags of `fleetml distill`, as commander hands them over (strings). */
export interface DistillCliOptions {
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
  task?: string;
  blankWeight: string;
  hardWeight: string;
  imageSize?: string;
  imageMean?: string;
  imageStd?: string;
}

const numberList = (value: string | undefined, flag: string) => {
  if (value === undefined) return undefined;
  const values = value.split(',').map(Number);
  if (values.some((v) => !Number.isFinite(v)))
    throw new FleetError('INPUT_INVALID', `${flag} takes numbers separated by commas, got ${value}`);
  return values;
};

function imageOptions(opts: DistillCliOptions) {
  const size = opts.imageSize === undefined ? undefined : /^(\d+)x(\d+)$/.exec(opts.imageSize);
  if (opts.imageSize !== undefined && !size) {
    throw new FleetError(
      'INPUT_INVALID',
      `--image-size takes WIDTHxHEIGHT, e.g. 320x48, got ${opts.imageSize}`,
    );
  }
  return {
    width: size ? Number(size[1]) : undefined,
    height: size ? Number(size[2]) : undefined,
    mean: numberList(opts.imageMean, '--image-mean'),
    std: numberList(opts.imageStd, '--image-std'),
  };
}

const number = (value: string, flag: string, min?: number) => numberOption(value, flag, min);

/**
 * What `fleetml distill` asks of the trainer for its flags: one pure step, so that every flag
 * is checked by a unit test and a bad value is a coded error before any training starts.
 */
export function distillRequest(opts: DistillCliOptions): DistillRequest {
  const optimizer = opts.optimizer as 'sgd' | 'adam' | 'adamw';
  if (!['sgd', 'adam', 'adamw'].includes(optimizer)) {
    throw new FleetError('INPUT_INVALID', `--optimizer must be sgd, adam or adamw, got ${opts.optimizer}`);
  }
  const schedule = opts.schedule as 'constant' | 'cosine' | 'step';
  if (!['constant', 'cosine', 'step'].includes(schedule)) {
    throw new FleetError(
      'INPUT_INVALID',
      `--schedule must be constant, cosine or step, got ${opts.schedule}`,
    );
  }
  const task = opts.task as 'classes' | 'sequence' | 'dense' | undefined;
  if (task !== undefined && !['classes', 'sequence', 'dense'].includes(task)) {
    throw new FleetError('INPUT_INVALID', `--task must be classes, sequence or dense, got ${opts.task}`);
  }
  const alpha = number(opts.alpha, '--alpha', 0);
  if (alpha > 1) throw new FleetError('INPUT_INVALID', `--alpha must be in [0, 1], got ${opts.alpha}`);
  return {
    teacher: opts.teacher,
    data: opts.data,
    labels: opts.labels,
    student: opts.student,
    valData: opts.valData,
    valLabels: opts.valLabels,
    output: opts.output,
    task,
    images: imageOptions(opts),
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
      loss: {
        temperature: number(opts.temperature, '--temperature', Number.MIN_VALUE),
        alpha,
        blankWeight: number(opts.blankWeight, '--blank-weight', 0),
        hardWeight: number(opts.hardWeight, '--hard-weight', 0),
      },
      optimizer: { kind: optimizer, lr: opts.lr === undefined ? undefined : number(opts.lr, '--lr', 0) },
      schedule: { kind: schedule, warmupSteps: number(opts.warmup, '--warmup', 0) },
    },
  };
}
