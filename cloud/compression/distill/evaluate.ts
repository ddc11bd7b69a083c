import { argmaxRows } from '../evaluate/metrics.js';
import type { ModelProto } from '../onnx/types.js';
import { agreement } from './agreement.js';
import type { DistillTask } from './losses.js';
import { ModelRunner } from './teacher.js';
import type { TrainData } from './trainer.js';

/**
 * Accuracy against labels (class outputs) and agreement with the teacher's outputs on `data`
 * (top-1 for classes, identical greedy CTC decodes for sequences, F1 of binarised maps for
 * dense outputs; see agreement.ts).
 */
export async function evaluate(
  model: ModelProto,
  data: TrainData,
  teacherOutputs: Float32Array | undefined,
  classes: number,
  options: { intraOpThreads?: number; task?: DistillTask } = {},
): Promise<{ accuracy?: number; agreement?: number; errors?: number }> {
  const runner = await ModelRunner.create(model, 'student', options);
  const task = options.task ?? 'classes';
  try {
    const [outputs] = await runner.run(data.x, data.count);
    const result: { accuracy?: number; agreement?: number; errors?: number } = {};
    if (data.y && task === 'classes') {
      const predicted = argmaxRows(outputs, classes);
      let correct = 0;
      for (let i = 0; i < data.count; i++) if (predicted[i] === data.y[i]) correct++;
      result.accuracy = correct / data.count;
      result.errors = data.count - correct;
    }
    if (teacherOutputs) result.agreement = agreement(task, outputs, teacherOutputs, data.count, classes);
    return result;
  } finally {
    await runner.release();
  }
}
