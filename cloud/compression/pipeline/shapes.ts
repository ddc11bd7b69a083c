import { FleetError } from '../../../shared/errors/index.js';
import { checkServingShapes, formatDeclaredShape } from '../../../shared/serving-shape.js';
import { describeOnnx } from '../describe.js';
import { decodeModel, encodeModel } from '../onnx/proto.js';

export interface ResolvedSampleShape {
  /** Input name -> [1, ...sample shape]: what the variants are measured and served at. */
  servingShapes: Record<string, number[]>;
  /** The original with its symbolic sample dims fixed from the data (the batch stays open). */
  teacher: Uint8Array;
}

/**
 * Checks that the data fits the model and resolves the model's symbolic sample dimensions
 * (height, width...) from it. Wrong data is INPUT_INVALID naming the shape the model expects,
 * before any stage runs.
 */
export function resolveSampleShape(
  modelBytes: Uint8Array,
  sampleShape: readonly number[],
  dataLabel: string,
): ResolvedSampleShape {
  const { inputs } = describeOnnx(modelBytes);
  if (inputs.length !== 1) {
    throw new FleetError(
      'INPUT_INVALID',
      `compress feeds one .npy to one input; the model has ${inputs.length}: ${inputs.map((i) => `${i.name} ${formatDeclaredShape(i.shape)}`).join(', ')}`,
    );
  }
  const input = inputs[0];
  const dims = [1, ...sampleShape];
  let servingShapes: Record<string, number[]>;
  try {
    servingShapes = checkServingShapes(inputs, { [input.name]: dims });
  } catch {
    throw new FleetError(
      'INPUT_INVALID',
      `${dataLabel} holds samples of shape [${sampleShape.join(',')}], but input ${input.name} expects ${formatDeclaredShape(input.shape)} (one sample: ${formatDeclaredShape(input.shape.slice(1))})`,
      { input: input.name, expected: formatDeclaredShape(input.shape), got: [...sampleShape] },
    );
  }
  const model = decodeModel(modelBytes);
  const declared = (model.graph.input ?? []).find((i) => i.name === input.name);
  const shapeDims = declared?.type?.tensorType?.shape?.dim ?? [];
  shapeDims.forEach((d, i) => {
    if (i === 0 || (d.dimValue && d.dimValue > 0)) return;
    shapeDims[i] = { dimValue: sampleShape[i - 1] };
  });
  return { servingShapes, teacher: encodeModel(model) };
}
