import { argmaxRows } from '../evaluate/metrics.js';
import type { DistillTask } from './losses.js';

/** Probability above which a dense map's pixel counts as foreground (DB text detectors use 0.3). */
export const DENSE_THRESHOLD = 0.3;

/**
 * How closely a student's outputs follow the teacher's on `count` samples: top-1 agreement for
 * classes; share of samples whose greedy CTC decodes (argmax per timestep, repeats merged,
 * blank 0 dropped) are identical for sequences; F1 of the binarised maps for dense outputs.
 */
export function agreement(
  task: DistillTask,
  student: Float32Array,
  teacher: Float32Array,
  count: number,
  lastAxis: number,
): number {
  if (task === 'dense') return binaryF1(student, teacher, DENSE_THRESHOLD);
  if (task === 'classes') {
    const s = argmaxRows(student, lastAxis);
    const t = argmaxRows(teacher, lastAxis);
    let same = 0;
    for (let i = 0; i < count; i++) if (s[i] === t[i]) same++;
    return same / count;
  }
  const steps = student.length / count / lastAxis;
  const s = argmaxRows(student, lastAxis);
  const t = argmaxRows(teacher, lastAxis);
  let same = 0;
  for (let i = 0; i < count; i++) {
    const a = ctcGreedy(s.subarray(i * steps, (i + 1) * steps));
    const b = ctcGreedy(t.subarray(i * steps, (i + 1) * steps));
    if (a.length === b.length && a.every((v, k) => v === b[k])) same++;
  }
  return same / count;
}

/** Greedy CTC: merge repeated labels, then drop blanks (label 0). */
export function ctcGreedy(path: ArrayLike<number>): number[] {
  const out: number[] = [];
  let previous = -1;
  for (let i = 0; i < path.length; i++) {
    const v = path[i];
    if (v !== previous && v !== 0) out.push(v);
    previous = v;
  }
  return out;
}

/** F1 of `predicted > threshold` against `reference > threshold` (1 when both are empty). */
export function binaryF1(predicted: Float32Array, reference: Float32Array, threshold: number): number {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < predicted.length; i++) {
    const p = predicted[i] > threshold;
    const r = reference[i] > threshold;
    if (p && r) tp++;
    else if (p) fp++;
    else if (r) fn++;
  }
  return tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn);
}
