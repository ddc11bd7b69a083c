import { FleetError } from '../../../shared/errors/index.js';
import { createRng, permutation } from '../../../shared/random.js';
import type { ModelProto } from '../onnx/types.js';
import {
  type BatchNeeds,
  type BatchSource,
  ResidentBatches,
  ShiftedBatches,
  type TeacherCache,
  type TrainData,
} from './batch-source.js';
import { writeCheckpoint, writeStepCheckpoint } from './checkpoints.js';
import { BestEpochKeeper, epochScore } from './early-stopping.js';
import { evaluate } from './evaluate.js';
import { countParameters, exportStudent } from './export.js';
import type { DistillTask } from './losses.js';
import { defaultLearningRate } from './optim/optimizers.js';
import { learningRate } from './optim/schedule.js';
import { trainingForm } from './students/training-form.js';
import { detectTask, outputActivation, toTargets } from './task.js';
import { ModelRunner } from './teacher.js';
import {
  DEFAULT_TRAIN_OPTIONS,
  type EpochRecord,
  type TrainOptions,
  type TrainResult,
} from './train-options.js';
import { TrainingSession } from './train-session.js';
import { buildTrainingGraph, type TrainingGraph } from './training-graph.js';

export type { TrainData } from './batch-source.js';
export { evaluate } from './evaluate.js';
export * from './train-options.js';

type Resolved = TrainOptions & { [K in keyof typeof DEFAULT_TRAIN_OPTIONS]: number };

/** Everything one training needs once it is set up. */
interface Setup {
  o: Resolved;
  student: ModelProto;
  graph: TrainingGraph;
  session: TrainingSession;
  teacher?: ModelRunner;
  batches: BatchSource;
  valTeacher?: Float32Array;
  rng: () => number;
  stepsPerEpoch: number;
  task: DistillTask;
}

/**
 * Trains `student` (an inference model) on `train`, distilling from `teacher` unless the loss
 * mode is 'hard'. Without augmentation the teacher runs once over all samples (in large
 * batches) and the samples stay resident in the training session; with shifts the teacher
 * labels every run's shifted samples.
 */
export async function trainStudent(
  student: ModelProto,
  teacher: ModelProto | undefined,
  train: TrainData,
  validation: TrainData | undefined,
  options: TrainOptions = {},
): Promise<TrainResult> {
  const o: Resolved = { ...DEFAULT_TRAIN_OPTIONS, ...options };
  checkRequest(o, teacher, train);
  const setup = await prepare(student, teacher, train, validation, o);
  const keeper = new BestEpochKeeper(o.patience);
  const history: EpochRecord[] = [];
  const clock = { ms: 0, samples: 0 };
  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const loss = await trainEpoch(setup, train.count, epoch, clock);
      const record = await closeEpoch(setup, student, validation, epoch, loss);
      history.push(record);
      if (keeper.observe(epoch, epochScore(record), setup.session.values())) break;
    }
  } finally {
    await setup.session.release();
    await setup.teacher?.release();
  }
  const model = exportStudent(student, keeper.values);
  const final = history.find((h) => h.epoch === keeper.epoch)!;
  return {
    model,
    history,
    accuracy: final.accuracy,
    agreement: final.agreement,
    parameters: countParameters(model),
    samplesPerSecond: clock.samples / (clock.ms / 1000),
    bestEpoch: keeper.epoch,
  };
}

function checkRequest(o: Resolved, teacher: ModelProto | undefined, train: TrainData): void {
  const mode = o.loss?.mode ?? 'distill';
  if (mode !== 'hard' && !teacher) throw new FleetError('INPUT_INVALID', `loss mode ${mode} needs a teacher`);
  if (mode !== 'soft' && !train.y)
    throw new FleetError('INPUT_INVALID', `loss mode ${mode} needs labels (or use soft mode)`);
  if (train.count < o.batch)
    throw new FleetError('INPUT_INVALID', `${train.count} samples are fewer than one batch of ${o.batch}`);
}

async function prepare(
  student: ModelProto,
  teacher: ModelProto | undefined,
  train: TrainData,
  validation: TrainData | undefined,
  o: Resolved,
): Promise<Setup> {
  const threads = { intraOpThreads: o.intraOpThreads };
  const hintTensor = o.loss?.hint?.teacher;
  const runner = teacher
    ? await ModelRunner.create(teacher, 'teacher', {
        ...threads,
        extraOutputs: hintTensor ? [hintTensor] : [],
      })
    : undefined;
  try {
    const shapes = runner ? await teacherShapes(runner, train) : undefined;
    const task = o.loss?.task ?? (shapes ? detectTask(shapes.target) : 'classes');
    const targetShape = shapes?.target ?? [maxLabel(train.y!) + 1];
    const classes = targetShape[targetShape.length - 1];
    const activation = teacher ? outputActivation(teacher.graph) : 'none';
    const graph = await buildTrainingGraph(trainingForm(student, o.seed, train.sampleShape), {
      batch: o.batch,
      classes: task === 'classes' ? targetShape.reduce((a, b) => a * b, 1) : classes,
      targetShape,
      loss: { ...o.loss, task },
      optimizer: o.optimizer,
      teacherHintShape: shapes?.hint,
      seed: o.seed,
    });
    const session = await TrainingSession.create(graph, { ...threads, allowSpinning: o.allowSpinning });
    const needs: BatchNeeds = {
      teacherTargets: graph.uses.teacherLogits,
      labels: graph.uses.labels,
      hint: graph.uses.teacherHint,
      classes: graph.classes,
      toTargets: (raw) => toTargets(raw, activation, task, targetShape[0]),
    };
    const valTeacher =
      runner && validation ? (await runner.run(validation.x, validation.count))[0] : undefined;
    const rng = createRng(o.seed ^ 0x5eed);
    const { batches, teacherRunner } = await trainingBatches(o, train, runner, session, needs, rng);
    const stepsPerEpoch = Math.floor(train.count / o.batch);
    return {
      o,
      student,
      graph,
      session,
      teacher: teacherRunner,
      batches,
      valTeacher,
      rng,
      stepsPerEpoch,
      task,
    };
  } catch (error) {
    await runner?.release();
    throw error;
  }
}

/**
 * Shifted batches (labelled by the teacher on the fly) or resident ones (the teacher's outputs
 * cached once). Resident batches do not keep the teacher's session (and its memory, a
 * page-sized arena for a detector) through training: it is released here.
 */
async function trainingBatches(
  o: Resolved,
  train: TrainData,
  runner: ModelRunner | undefined,
  session: TrainingSession,
  needs: BatchNeeds,
  rng: () => number,
): Promise<{ batches: BatchSource; teacherRunner: ModelRunner | undefined }> {
  if (o.shift > 0) {
    const batches = new ShiftedBatches(train, runner, needs, o.shift, rng, o.stepsPerRun * o.batch);
    return { batches, teacherRunner: runner };
  }
  const batches = new ResidentBatches(session, train, await teacherCache(runner, train, needs), needs);
  await runner?.release();
  return { batches, teacherRunner: undefined };
}

/** Per-sample shapes of the teacher's first output and of its hint tensor (when asked for). */
async function teacherShapes(
  runner: ModelRunner,
  train: TrainData,
): Promise<{ target: number[]; hint?: number[] }> {
  const size = train.sampleShape.reduce((a, b) => a * b, 1);
  await runner.run(train.x.subarray(0, size), 1);
  return {
    target: runner.lastShapes[0],
    hint: runner.extraOutputs.length ? runner.lastShapes[1] : undefined,
  };
}

async function teacherCache(
  runner: ModelRunner | undefined,
  train: TrainData,
  needs: BatchNeeds,
): Promise<TeacherCache | undefined> {
  if (!runner || !(needs.teacherTargets || needs.hint)) return undefined;
  const [raw, hint] = await runner.run(train.x, train.count);
  return { targets: needs.toTargets ? needs.toTargets(raw) : raw, hint };
}

/** One pass over the training data in runs of K steps; returns the mean step loss. */
async function trainEpoch(s: Setup, count: number, epoch: number, clock: { ms: number; samples: number }) {
  const { o, graph } = s;
  const B = o.batch;
  const K = o.stepsPerRun;
  const H = graph.optimizer.hyperSize;
  const baseLr = o.optimizer?.lr ?? defaultLearningRate(o.optimizer?.kind ?? 'sgd');
  const totalSteps = s.stepsPerEpoch * o.epochs;
  const hyper = new Float32Array(K * H);
  const order = permutation(count, s.rng);
  let lossSum = 0;
  for (let step = 0; step < s.stepsPerEpoch; ) {
    const started = performance.now();
    const k = Math.min(K, s.stepsPerEpoch - step);
    const rows = await s.batches.rows(order, step * B, k * B);
    const globalStep = (epoch - 1) * s.stepsPerEpoch + step;
    for (let i = 0; i < k; i++) {
      const lr = learningRate(baseLr, globalStep + i, totalSteps, o.schedule);
      hyper.set(graph.optimizer.hyper(globalStep + i, lr), i * H);
    }
    const { losses } = await s.session.run({ ...rows, steps: k, hyper: hyper.subarray(0, k * H) });
    clock.ms += performance.now() - started;
    clock.samples += k * B;
    for (const l of losses) lossSum += l;
    if (!Number.isFinite(losses[k - 1])) {
      throw new FleetError(
        'TRAIN_FAILED',
        `loss became ${losses[k - 1]} at epoch ${epoch}; lower the learning rate`,
      );
    }
    step += k;
    await checkpointSteps(s, globalStep, globalStep + k);
    o.onProgress?.({ epoch, step, stepsPerEpoch: s.stepsPerEpoch, loss: losses[k - 1] });
  }
  return lossSum / s.stepsPerEpoch;
}

/** A step checkpoint when the run from step `before` to `after` passed a multiple of the interval. */
async function checkpointSteps(s: Setup, before: number, after: number): Promise<void> {
  const every = s.o.checkpointEverySteps;
  if (!s.o.checkpointDir || !(every > 0) || Math.floor(after / every) === Math.floor(before / every)) return;
  const model = exportStudent(s.student, s.session.values());
  await writeStepCheckpoint(s.o.checkpointDir, after, s.o.prepareCheckpoint?.(model) ?? model);
}

/** Validation, progress report and checkpoint at the end of an epoch. */
async function closeEpoch(
  s: Setup,
  student: ModelProto,
  validation: TrainData | undefined,
  epoch: number,
  loss: number,
): Promise<EpochRecord> {
  const record: EpochRecord = { epoch, loss };
  const values = s.session.values();
  if (validation) {
    const scores = await evaluate(exportStudent(student, values), validation, s.valTeacher, s.graph.classes, {
      intraOpThreads: s.o.intraOpThreads,
      task: s.task,
    });
    Object.assign(record, scores);
  }
  s.o.onProgress?.({
    epoch,
    step: s.stepsPerEpoch,
    stepsPerEpoch: s.stepsPerEpoch,
    loss,
    accuracy: record.accuracy,
    agreement: record.agreement,
  });
  if (s.o.checkpointDir) {
    const model = exportStudent(student, values);
    await writeCheckpoint(s.o.checkpointDir, epoch, s.o.prepareCheckpoint?.(model) ?? model);
  }
  return record;
}

function maxLabel(y: Int32Array): number {
  return y.reduce((m, v) => Math.max(m, v), 0);
}
