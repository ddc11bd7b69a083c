import { expect } from 'vitest';
import { gradientCheck } from '../../cloud/compression/distill/autodiff/gradcheck.js';
import { buildLoss, LOSS_INPUTS, type LossOptions } from '../../cloud/compression/distill/losses.js';
import { makeTensor, tensorFloats } from '../../cloud/compression/onnx/tensor.js';
import { DataType } from '../../cloud/compression/onnx/types.js';

/**
 * Checks a distillation loss's gradient with respect to the student's logits `z` (of `shape`)
 * against central finite differences, the teacher's targets fixed: float64 to 1e-5 where
 * onnxruntime has the kernels, else float32 to 2e-2. The loss's float constants follow the
 * checked type.
 */
export async function expectLossGradient(
  options: LossOptions & { denseChannels?: number },
  shape: number[],
  teacher: number[],
  z: number[],
): Promise<void> {
  const graph = buildLoss('z', options);
  const result = await gradientCheck({
    nodes: graph.nodes,
    inputs: [{ name: 'z', shape, values: z }],
    constants: (dt) => [
      makeTensor(LOSS_INPUTS.teacherLogits, dt, shape, teacher),
      ...graph.initializers.map((t) =>
        t.dataType === DataType.FLOAT
          ? makeTensor(t.name!, dt, t.dims!.map(Number), [...tensorFloats(t)])
          : t,
      ),
    ],
    output: graph.loss,
  });
  expect(result.checked).toBeGreaterThan(0);
  expect(result.maxRelativeError).toBeLessThan(result.dtype === 'float64' ? 1e-5 : 2e-2);
}
