import { SingleBar } from 'cli-progress';
import { FleetError } from '../../../shared/errors/index.js';
import { readNpy, toFloat32, toLabels } from '../data/npy.js';
import { loadModel, saveModel } from '../onnx/io.js';
import type { ModelProto } from '../onnx/types.js';
import { loadTrainData } from './data.js';
import { parseShrink, shrinkModel } from './students/shrink.js';
import { buildTemplate, parseTemplate } from './students/templates.js';
import { ModelRunner } from './teacher.js';
import { type TrainData, type TrainOptions, trainStudent } from './trainer.js';

export interface DistillRequest {
  teacher: string;
  data: string;
  labels?: string;
  /** Template (mlp:..., cnn:..., mlp@params) or a path to a student ONNX model. */
  student: string;
  valData?: string;
  valLabels?: string;
  output: string;
  /** Draw a progress bar on stderr; default true. */
  progress?: boolean;
  train: TrainOptions;
}

export interface DistillSummary {
  accuracy: number | null;
  agreement: number | null;
  parameters: number;
  bytes: number;
  samplesPerSecond: number;
  epochs: number;
  bestEpoch: number;
  output: string;
}

/** The `fleetml distill` pipeline: load, build the student, train, write the student. */
export async function runDistill(request: DistillRequest): Promise<DistillSummary> {
  const teacher = await loadModel(request.teacher);
  const probe = await ModelRunner.create(teacher, 'teacher');
  const sampleShape = probe.sampleShape;
  const inputName = probe.input;
  await probe.release();
  const { train, builtinValidation } = await loadTrainData(request.data, request.labels, sampleShape);
  const validation = request.valData ? await loadValidation(request, sampleShape) : builtinValidation;
  const classes = await teacherClasses(teacher, train);
  const student = await loadStudent(request.student, teacher, {
    sampleShape,
    classes,
    inputName,
    seed: request.train.seed ?? 0,
  });
  const mode = train.y ? 'distill' : 'soft';
  const bar =
    request.progress === false
      ? undefined
      : new SingleBar({
          format: 'epoch {epoch} |{bar}| {value}/{total} steps | loss {loss} | val acc {acc} | agree {agree}',
          hideCursor: true,
          clearOnComplete: false,
        });
  let lastEpoch = 0;
  const result = await trainStudent(student, teacher, train, validation, {
    ...request.train,
    loss: { ...request.train.loss, mode },
    onProgress: (e) => {
      if (!bar) return;
      const payload = {
        epoch: `${e.epoch}/${request.train.epochs ?? 10}`,
        loss: e.loss.toFixed(4),
        acc: e.accuracy === undefined ? '-' : (e.accuracy * 100).toFixed(2),
        agree: e.agreement === undefined ? '-' : (e.agreement * 100).toFixed(2),
      };
      if (e.epoch !== lastEpoch) {
        if (lastEpoch === 0) bar.start(e.stepsPerEpoch, e.step, payload);
        else bar.setTotal(e.stepsPerEpoch);
        lastEpoch = e.epoch;
      }
      bar.update(e.step, payload);
    },
  });
  bar?.stop();
  const bytes = await saveModel(result.model, request.output);
  return {
    accuracy: result.accuracy ?? null,
    agreement: result.agreement ?? null,
    parameters: result.parameters,
    bytes,
    samplesPerSecond: Math.round(result.samplesPerSecond),
    epochs: result.history.length,
    bestEpoch: result.bestEpoch,
    output: request.output,
  };
}

async function loadValidation(request: DistillRequest, sampleShape: number[]): Promise<TrainData> {
  const x = await readNpy(request.valData!);
  const data: TrainData = { x: toFloat32(x.data), count: x.shape[0], sampleShape };
  if (x.data.length !== x.shape[0] * sampleShape.reduce((a, b) => a * b, 1)) {
    throw new FleetError(
      'ONNX_SHAPE',
      `${request.valData}: samples do not fit the teacher's input [${sampleShape}]`,
    );
  }
  if (request.valLabels) data.y = toLabels(await readNpy(request.valLabels));
  return data;
}

async function teacherClasses(teacher: ModelProto, train: TrainData): Promise<number> {
  const runner = await ModelRunner.create(teacher, 'teacher');
  try {
    const size = train.sampleShape.reduce((a, b) => a * b, 1);
    const [out] = await runner.run(train.x.subarray(0, size), 1);
    return out.length;
  } finally {
    await runner.release();
  }
}

/** The student a `--student` spec names: a shrunk teacher, a template, or an ONNX file. */
export async function loadStudent(
  spec: string,
  teacher: ModelProto,
  o: { sampleShape: number[]; classes: number; inputName: string; seed: number },
): Promise<ModelProto> {
  const width = parseShrink(spec);
  if (width !== undefined) return (await shrinkModel(teacher, width, o.sampleShape)).model;
  const size = o.sampleShape.reduce((a, b) => a * b, 1);
  const template = parseTemplate(spec, size, o.classes);
  if (template) return buildTemplate(template, o);
  if (!spec.endsWith('.onnx')) {
    throw new FleetError(
      'INPUT_INVALID',
      `--student ${spec} is neither shrink:<width>, a template (mlp:800,800, cnn:16,32) nor an .onnx file`,
    );
  }
  return loadModel(spec);
}
