import { copyShifted, oneHot } from './batches.js';
import type { ModelRunner } from './teacher.js';
import type { RunChunk, SampleSet, TrainingSession } from './train-session.js';

/** Samples in memory: x is [count, ...sampleShape] row-major; labels optional. */
export interface TrainData {
  x: Float32Array;
  y?: Int32Array;
  count: number;
  sampleShape: number[];
}

/** What one run of K steps reads, without the optimizer numbers. */
export type RunRows = Omit<RunChunk, 'hyper'>;

/**
 * Where a run's samples come from. `rows(order, first, count)` returns the run that trains on
 * samples `order[first .. first + count)` (count = K · B).
 */
export interface BatchSource {
  rows(order: Uint32Array, first: number, count: number): Promise<RunRows>;
}

export interface BatchNeeds {
  teacherTargets: boolean;
  labels: boolean;
  hint: boolean;
  classes: number;
}

/** Teacher outputs computed once for every training sample: targets and (optional) hint tensors. */
export interface TeacherCache {
  targets: Float32Array;
  hint?: Float32Array;
}

/**
 * The fast path (no augmentation): the whole training set, its cached teacher outputs and
 * one-hot labels become the session's resident samples once; a run is only its row indices,
 * gathered inside the training graph. Nothing is copied per step on the JavaScript side.
 */
export class ResidentBatches implements BatchSource {
  private indices = new BigInt64Array(0);

  constructor(
    session: TrainingSession,
    train: TrainData,
    cache: TeacherCache | undefined,
    needs: BatchNeeds,
  ) {
    const samples: SampleSet = { count: train.count, x: train.x };
    if (needs.teacherTargets) samples.teacherLogits = cache!.targets;
    if (needs.hint) samples.teacherHint = cache!.hint;
    if (needs.labels) {
      samples.labelsOneHot = new Float32Array(train.count * needs.classes);
      oneHot(train.y!, identity(train.count), needs.classes, samples.labelsOneHot, 0);
    }
    session.setSamples(samples);
  }

  async rows(order: Uint32Array, first: number, count: number): Promise<RunRows> {
    if (this.indices.length < count) this.indices = new BigInt64Array(count);
    for (let i = 0; i < count; i++) this.indices[i] = BigInt(order[first + i]);
    return { steps: 0, indices: this.indices.subarray(0, count) };
  }
}

/**
 * The augmented path: every run copies its samples with random shifts into one reused
 * buffer, and the teacher labels the shifted samples there and then.
 */
export class ShiftedBatches implements BatchSource {
  private readonly x: Float32Array;
  private readonly labels: Float32Array;
  private readonly sampleSize: number;

  constructor(
    private readonly train: TrainData,
    private readonly teacher: ModelRunner | undefined,
    private readonly needs: BatchNeeds,
    private readonly shift: number,
    private readonly rng: () => number,
    maxRows: number,
  ) {
    this.sampleSize = train.sampleShape.reduce((a, b) => a * b, 1);
    this.x = new Float32Array(maxRows * this.sampleSize);
    this.labels = new Float32Array(needs.labels ? maxRows * needs.classes : 0);
  }

  async rows(order: Uint32Array, first: number, count: number): Promise<RunRows> {
    const picked = order.subarray(first, first + count);
    const draw = () => Math.floor(this.rng() * (2 * this.shift + 1)) - this.shift;
    for (let i = 0; i < count; i++) {
      const dy = draw();
      const dx = draw();
      copyShifted(this.train.x, picked[i], this.train.sampleShape, this.x, i * this.sampleSize, dy, dx);
    }
    const x = this.x.subarray(0, count * this.sampleSize);
    const run: RunRows = { steps: 0, x };
    if (this.needs.labels) {
      oneHot(this.train.y!, picked, this.needs.classes, this.labels, 0);
      run.labelsOneHot = this.labels.subarray(0, count * this.needs.classes);
    }
    if (this.needs.teacherTargets || this.needs.hint) {
      const fresh = await this.teacher!.run(x, count);
      run.teacherLogits = fresh[0];
      if (this.needs.hint) run.teacherHint = fresh[1];
    }
    return run;
  }
}

function identity(n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}
