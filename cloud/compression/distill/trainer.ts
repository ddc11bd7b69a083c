import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../../shared/errors/index.js';
import { createRng, permutation } from '../../../shared/random.js';
import { saveModel } from '../onnx/io.js';
import type { ModelProto } from '../onnx/types.js';
import { copyShifted, oneHot } from './batches.js';
import { evaluate } from './evaluate.js';
import { countParameters, exportStudent } from './export.js';
import type { LossOptions } from './losses.js';
import { defaultLearningRate, type OptimizerOptions } from './optim/optimizers.js';
import { learningRate, type ScheduleOptions } from './optim/schedule.js';
import { trainingForm } from './students/training-form.js';
import { ModelRunner } from './teacher.js';
import { TrainingSession } from './train-session.js';
import { buildTrainingGraph } from './training-graph.js';

/** Samples in memory: x is [count, ...sampleShape] row-major; labels optional. */
export interface TrainData {
  x: Float32Array;
  y?: Int32Array;
  count: number;
  sampleShape: number[];
}

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

export { evaluate } from './evaluate.js';

export const DEFAULT_TRAIN_OPTIONS = {
  epochs: 10,
  batch: 128,
  stepsPerRun: 16,
  seed: 0,
  shift: 0,
  patience: 0,
  intraOpThreads: 0,
} as const;

/**
 * Trains `student` (an inference model) on `train`, distilling from `teacher` unless the loss
 * mode is 'hard'. Teacher logits are computed once and cached when there is no augmentation,
 * otherwise per run on the shifted batch.
 */
export async function trainStudent(
  student: ModelProto,
  teacher: ModelProto | undefined,
  train: TrainData,
  validation: TrainData | undefined,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const o = { ...DEFAULT_TRAIN_OPTIONS, ...options };
  const mode = o.loss?.mode ?? 'distill';
  if (mode !== 'hard' && !teacher) throw new FleetError('INPUT_INVALID', `loss mode ${mode} needs a teacher`);
  if (mode !== 'soft' && !train.y)
    throw new FleetError('INPUT_INVALID', `loss mode ${mode} needs labels (or use soft mode)`);
  const B = o.batch;
  const stepsPerEpoch = Math.floor(train.count / B);
  if (stepsPerEpoch < 1)
    throw new FleetError('INPUT_INVALID', `${train.count} samples are fewer than one batch of ${B}`);
  const threads = { intraOpThreads: o.intraOpThreads };
  const hintTensor = o.loss?.hint?.teacher;
  const teacherRunner = teacher
    ? await ModelRunner.create(teacher, 'teacher', {
        ...threads,
        extraOutputs: hintTensor ? [hintTensor] : [],
      })
    : undefined;
  const sampleSize = train.sampleShape.reduce((a, b) => a * b, 1);
  let classes: number;
  let cached: Float32Array[] | undefined;
  if (teacherRunner) {
    const probe = await teacherRunner.run(train.x.subarray(0, sampleSize), 1);
    classes = probe[0].length;
    if (o.shift === 0) cached = await teacherRunner.run(train.x, train.count);
  } else {
    classes = train.y!.reduce((m, v) => Math.max(m, v), 0) + 1;
  }
  const hintShape =
    teacherRunner && hintTensor ? await hintSampleShape(teacherRunner, train, sampleSize) : undefined;

  const form = trainingForm(student, o.seed, train.sampleShape);
  const kind = o.optimizer?.kind ?? 'sgd';
  const baseLr = o.optimizer?.lr ?? defaultLearningRate(kind);
  const graph = await buildTrainingGraph(form, {
    batch: B,
    classes,
    loss: o.loss,
    optimizer: o.optimizer,
    teacherHintShape: hintShape,
    seed: o.seed,
  });
  const session = await TrainingSession.create(graph, { ...threads, allowSpinning: o.allowSpinning });
  const valTeacher =
    teacherRunner && validation ? (await teacherRunner.run(validation.x, validation.count))[0] : undefined;

  const rng = createRng(o.seed ^ 0x5eed);
  const K = o.stepsPerRun;
  const H = graph.optimizer.hyperSize;
  const xBuf = new Float32Array(K * B * sampleSize);
  const yBuf = new Float32Array(K * B * classes);
  const tBuf = new Float32Array(K * B * classes);
  const hintSize = hintShape ? hintShape.reduce((a, b) => a * b, 1) : 0;
  const hBuf = new Float32Array(K * B * hintSize);
  const hyper = new Float32Array(K * H);
  const totalSteps = stepsPerEpoch * o.epochs;
  let globalStep = 0;
  let trainMs = 0;
  let trainedSamples = 0;
  const history: EpochRecord[] = [];
  let best: { score: number; epoch: number; values: Map<string, Float32Array> } | undefined;
  let stale = 0;

  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const order = permutation(train.count, rng);
      let lossSum = 0;
      for (let step = 0; step < stepsPerEpoch; ) {
        const started = performance.now();
        const k = Math.min(K, stepsPerEpoch - step);
        const rows = order.subarray(step * B, (step + k) * B);
        for (let i = 0; i < rows.length; i++) {
          const dy = o.shift ? Math.floor(rng() * (2 * o.shift + 1)) - o.shift : 0;
          const dx = o.shift ? Math.floor(rng() * (2 * o.shift + 1)) - o.shift : 0;
          copyShifted(train.x, rows[i], train.sampleShape, xBuf, i * sampleSize, dy, dx);
        }
        if (graph.uses.labels) oneHot(train.y!, rows, classes, yBuf, 0);
        if (graph.uses.teacherLogits || graph.uses.teacherHint) {
          if (cached) {
            for (let i = 0; i < rows.length; i++) {
              tBuf.set(cached[0].subarray(rows[i] * classes, (rows[i] + 1) * classes), i * classes);
              if (hintSize)
                hBuf.set(cached[1].subarray(rows[i] * hintSize, (rows[i] + 1) * hintSize), i * hintSize);
            }
          } else {
            const fresh = await teacherRunner!.run(xBuf, rows.length);
            tBuf.set(fresh[0]);
            if (hintSize) hBuf.set(fresh[1]);
          }
        }
        for (let s = 0; s < k; s++)
          hyper.set(
            graph.optimizer.hyper(
              globalStep + s,
              learningRate(baseLr, globalStep + s, totalSteps, o.schedule),
            ),
            s * H,
          );
        const n = k * B;
        const { losses } = await session.run({
          steps: k,
          x: xBuf.subarray(0, n * sampleSize),
          labelsOneHot: graph.uses.labels ? yBuf.subarray(0, n * classes) : undefined,
          teacherLogits: graph.uses.teacherLogits ? tBuf.subarray(0, n * classes) : undefined,
          teacherHint: graph.uses.teacherHint ? hBuf.subarray(0, n * hintSize) : undefined,
          hyper: hyper.subarray(0, k * H),
        });
        trainMs += performance.now() - started;
        trainedSamples += n;
        for (const l of losses) lossSum += l;
        if (!Number.isFinite(losses[k - 1])) {
          throw new FleetError(
            'TRAIN_FAILED',
            `loss became ${losses[k - 1]} at epoch ${epoch}; lower the learning rate`,
          );
        }
        step += k;
        globalStep += k;
        o.onProgress?.({ epoch, step, stepsPerEpoch, loss: losses[k - 1] });
      }
      const record: EpochRecord = { epoch, loss: lossSum / stepsPerEpoch };
      const values = session.values();
      if (validation) {
        Object.assign(
          record,
          await evaluate(exportStudent(student, values), validation, valTeacher, classes, threads),
        );
      }
      history.push(record);
      o.onProgress?.({
        epoch,
        step: stepsPerEpoch,
        stepsPerEpoch,
        loss: record.loss,
        accuracy: record.accuracy,
        agreement: record.agreement,
      });
      if (o.checkpointDir) {
        await mkdir(o.checkpointDir, { recursive: true });
        await saveModel(
          exportStudent(student, values),
          join(o.checkpointDir, `epoch-${String(epoch).padStart(3, '0')}.onnx`),
        );
      }
      const score = record.accuracy ?? record.agreement ?? -record.loss;
      if (!best || score > best.score) {
        best = { score, epoch, values: new Map([...values].map(([k, v]) => [k, v.slice()])) };
        stale = 0;
      } else if (o.patience > 0 && ++stale >= o.patience) {
        break;
      }
    }
  } finally {
    await session.release();
    await teacherRunner?.release();
  }
  const model = exportStudent(student, best!.values);
  const final = history.find((h) => h.epoch === best!.epoch)!;
  return {
    model,
    history,
    accuracy: final.accuracy,
    agreement: final.agreement,
    parameters: countParameters(model),
    samplesPerSecond: trainedSamples / (trainMs / 1000),
    bestEpoch: best!.epoch,
  };
}

async function hintSampleShape(runner: ModelRunner, train: TrainData, size: number): Promise<number[]> {
  await runner.run(train.x.subarray(0, size), 1);
  return runner.lastShapes[1];
}
