/**
 * Hinton's distillation effect on the 8,000/2,000 MNIST split (part of scripts/bench/distill.ts,
 * runnable alone: `npx tsx scripts/bench/distill-hinton.ts [--quick]`).
 */
import { existsSync } from 'node:fs';
import { type Dataset, mnistSplit } from '../../cloud/compression/data/mnist.js';
import { buildTemplate } from '../../cloud/compression/distill/students/templates.js';
import { evaluate, type TrainOptions, trainStudent } from '../../cloud/compression/distill/trainer.js';
import { loadModel, saveModel } from '../../cloud/compression/onnx/io.js';
import type { ModelProto } from '../../cloud/compression/onnx/types.js';

export interface HintonRow {
  student: string;
  teacherErrors: number;
  scratchErrors: number;
  /** Distilled errors per temperature. */
  distilled: { temperature: number; errors: number; gapClosed: number }[];
  /** Distilled on a ±2 px shifted transfer set (teacher labels the shifted digits on the fly), when run. */
  shifted?: { temperature: number; errors: number; gapClosed: number };
}

/** Temperatures tried per student (small students prefer lower ones, as Hinton et al. note). */
export const TEMPERATURES = [4, 8];

const SHAPE = { sampleShape: [1, 28, 28], classes: 10 };

async function errors(model: ModelProto, test: Dataset): Promise<number> {
  const r = await evaluate(model, test, undefined, 10, { intraOpThreads: 2 });
  return r.errors!;
}

export async function trainTeacher(train: Dataset, epochs: number): Promise<ModelProto> {
  const init = buildTemplate(
    { kind: 'mlp', hidden: [1200, 1200] },
    { ...SHAPE, dropout: 0.5, inputDropout: 0.2, seed: 11 },
  );
  const result = await trainStudent(init, undefined, train, undefined, {
    epochs,
    loss: { mode: 'hard' },
    optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 },
    schedule: { kind: 'cosine', warmupSteps: 50 },
    shift: 2,
    intraOpThreads: 2,
    seed: 11,
  });
  return result.model;
}

export async function hinton(
  quick = false,
  log = (s: string) => process.stderr.write(`${s}\n`),
): Promise<HintonRow[]> {
  const { train, test } = mnistSplit();
  const teacherEpochs = quick ? 8 : 60;
  const studentEpochs = quick ? 5 : 30;
  let t0 = performance.now();
  // The teacher takes most of the time; --reuse-teacher keeps the one from the last full run.
  const cache = '.fleetml/bench/hinton-teacher.onnx';
  const reuse = !quick && process.argv.includes('--reuse-teacher') && existsSync(cache);
  const teacher = reuse ? await loadModel(cache) : await trainTeacher(train, teacherEpochs);
  if (!quick && !reuse) await saveModel(teacher, cache);
  const teacherErrors = await errors(teacher, test);
  log(
    `teacher 2x1200 (dropout, jitter): ${teacherErrors} errors, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  const rows: HintonRow[] = [];
  for (const hidden of [
    [800, 800],
    [64, 64],
  ]) {
    const name = `${hidden.join('x')} MLP`;
    const base: TrainOptions = {
      epochs: studentEpochs,
      optimizer: { kind: 'sgd', lr: 0.05, momentum: 0.9 },
      schedule: { kind: 'cosine' },
      intraOpThreads: 2,
      seed: 21,
    };
    const init = buildTemplate({ kind: 'mlp', hidden }, { ...SHAPE, seed: 21 });
    t0 = performance.now();
    const scratch = await trainStudent(init, undefined, train, undefined, {
      ...base,
      loss: { mode: 'hard' },
    });
    const scratchErrors = await errors(scratch.model, test);
    log(`${name} scratch: ${scratchErrors} errors, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const gap = scratchErrors - teacherErrors;
    const closed = (e: number) => (gap > 0 ? (scratchErrors - e) / gap : Number.NaN);
    const row: HintonRow = { student: name, teacherErrors, scratchErrors, distilled: [] };
    for (const temperature of TEMPERATURES) {
      t0 = performance.now();
      const distilled = await trainStudent(init, teacher, train, undefined, {
        ...base,
        loss: { mode: 'distill', temperature, alpha: 0.9 },
      });
      const e = await errors(distilled.model, test);
      row.distilled.push({ temperature, errors: e, gapClosed: closed(e) });
      log(
        `${name} distilled T=${temperature}: ${e} errors, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
      );
    }
    if (process.argv.includes('--transfer-shift')) {
      // The transfer set may be richer than the labelled set: the teacher labels shifted
      // digits on the fly. The student itself still gets no dropout.
      const temperature = TEMPERATURES[0];
      t0 = performance.now();
      const shifted = await trainStudent(init, teacher, train, undefined, {
        ...base,
        shift: 2,
        loss: { mode: 'distill', temperature, alpha: 0.9 },
      });
      const e = await errors(shifted.model, test);
      row.shifted = { temperature, errors: e, gapClosed: closed(e) };
      log(
        `${name} distilled T=${temperature} on shifted transfer set: ${e} errors, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
      );
    }
    rows.push(row);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await hinton(process.argv.includes('--quick'));
  console.log(JSON.stringify(rows, null, 2));
}
