import type { ModelProto } from '../onnx/types.js';
import type { LossOptions } from './losses.js';
import type { OptimizerOptions } from './optim/optimizers.js';
import type { ScheduleOptions } from './optim/schedule.js';

export interface TrainOptions {
  /** Passes over the training data; default 10. */
  epochs?: number;
  /** Samples per step; default 128. The last partial batch of an epoch is dropped. */
  batch?: number;
  /** Steps per onnxruntime call (length of the Loop); default 16. */
  stepsPerRun?: number;
  /** Seed of shuffling, augmentation, dropout and initialisation; default 0. */
  seed?: number;
  loss?: LossOptions;
  optimizer?: OptimizerOptions;
  schedule?: ScheduleOptions;
  /** Random shifts of up to this many pixels per axis (images only); default 0 (off). */
  shift?: number;
  /** Stop after this many epochs without a better validation score; default 0 (never). */
  patience?: number;
  /** Directory for a checkpoint (inference model) after every epoch; default none. */
  checkpointDir?: string;
  /**
   * With `checkpointDir`: also write `step-NNNNNN.onnx` at the end of the first run of K steps
   * that reaches each multiple of this many training steps (counted over all epochs), so that
   * a long epoch can be stopped without losing its progress. Default 0 (epoch ends only).
   */
  checkpointEverySteps?: number;
  /**
   * Applied to each checkpoint before it is written (runDistill gives a student of the teacher's
   * graph back the teacher's free height and width); default none.
   */
  prepareCheckpoint?: (model: ModelProto) => ModelProto;
  /** onnxruntime intra-op threads for training, teacher and evaluation; default 0 (all cores). */
  intraOpThreads?: number;
  /**
   * Let onnxruntime's idle threads spin between kernels: fastest on a dedicated machine
   * (25.9k vs 24.3k samples/s at K = 32), about half as fast when other jobs share the cores.
   * Default false.
   */
  allowSpinning?: boolean;
  /** Called after every run and every evaluation (drives the CLI's progress bar). */
  onProgress?: (event: ProgressEvent) => void;
}

export interface ProgressEvent {
  epoch: number;
  /** Steps done in this epoch and steps per epoch. */
  step: number;
  stepsPerEpoch: number;
  loss: number;
  /** Validation accuracy after the epoch (present on the evaluation event). */
  accuracy?: number;
  agreement?: number;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  accuracy?: number;
  agreement?: number;
}

export interface TrainResult {
  /** The trained student (best validation epoch) as a clean inference model. */
  model: ModelProto;
  history: EpochRecord[];
  /** Final validation accuracy (labels given) and top-1 agreement with the teacher (teacher given). */
  accuracy?: number;
  agreement?: number;
  parameters: number;
  /** Training samples per second over the training steps only (no evaluation, no teacher caching). */
  samplesPerSecond: number;
  bestEpoch: number;
}

export const DEFAULT_TRAIN_OPTIONS = {
  epochs: 10,
  batch: 128,
  stepsPerRun: 16,
  seed: 0,
  shift: 0,
  patience: 0,
  intraOpThreads: 0,
  checkpointEverySteps: 0,
} as const;
