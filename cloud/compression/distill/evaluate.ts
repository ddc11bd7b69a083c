import type { ModelProto } from '../onnx/types.js';
import { argmaxRows, ModelRunner } from './teacher.js';
import type { TrainData } from './trainer.js';

/** Accuracy against labels and top-1 agreement with the teacher's logits, on `data`. */
export async function evaluate(
  model: ModelProto,
  data: TrainData,
  teacherLogits: Float32Array | undefined,
  classes: number,
  options: { intraOpThreads?: number } = {},
): Promise<{ accuracy?: number; agreement?: number; errors?: number }> {
  const runner = await ModelRunner.create(model, 'student', options);
  try {
    const [logits] = await runner.run(data.x, data.count);
    const predicted = argmaxRows(logits, classes);
    const result: { accuracy?: number; agreement?: number; errors?: number } = {};
    if (data.y) {
      let correct = 0;
      for (let i = 0; i < data.count; i++) if (predicted[i] === data.y[i]) correct++;
      result.accuracy = correct / data.count;
      result.errors = data.count - correct;
    }
    if (teacherLogits) {
      const t = argmaxRows(teacherLogits, classes);
      let same = 0;
      for (let i = 0; i < data.count; i++) if (predicted[i] === t[i]) same++;
      result.agreement = same / data.count;
    }
    return result;
  } finally {
    await runner.release();
  }
}
