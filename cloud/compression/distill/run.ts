import { SingleBar } from 'cli-progress';
import { FleetError } from '../../../shared/errors/index.js';
import { constantsToInitializers } from '../onnx/constants.js';
import { fuseForInference } from '../onnx/fuse-conv-activation.js';
import { loadModel, saveModel } from '../onnx/io.js';
import { upgradeOpset } from '../onnx/opset.js';
import type { ModelProto } from '../onnx/types.js';
import { type ImageOptions, loadTrainData } from './data.js';
import { countParameters } from './export.js';
import type { DistillTask } from './losses.js';
import { parseShrink, shrinkModel } from './students/shrink.js';
import { buildTemplate, parseTemplate } from './students/templates.js';
import { MIN_STUDENT_OPSET } from './students/training-form.js';
import { detectTask } from './task.js';
import { ModelRunner } from './teacher.js';
import { type ProgressEvent, type TrainData, type TrainOptions, trainStudent } from './trainer.js';

export interface DistillRequest {
  teacher: string;
  data: string;
  labels?: string;
  /** Template (mlp:..., cnn:..., mlp@params) or a path to a student ONNX model. */
  student: string;
  valData?: string;
  valLabels?: string;
  output: string;
  /** Size and normalisation when `data` is a folder of images. */
  images?: ImageOptions;
  /** How to distil the outputs; default from the teacher's output shape (see task.ts). */
  task?: DistillTask;
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
  const loaded = await loadModel(request.teacher);
  const fixed = staticSampleShape(loaded);
  const { train, builtinValidation } = await loadTrainData(
    request.data,
    request.labels,
    fixed,
    request.images,
  );
  // A teacher with free height/width (detectors, recognisers) runs at the data's size.
  const teacher = fixed ? loaded : pinSampleShape(loaded, train.sampleShape);
  const sampleShape = train.sampleShape;
  const inputName = firstInput(teacher).name;
  const validation = request.valData ? await loadValidation(request, sampleShape) : builtinValidation;
  const targetShape = await teacherOutputShape(teacher, train);
  const task = request.task ?? request.train.loss?.task ?? detectTask(targetShape);
  const loadedStudent = await loadStudent(request.student, teacher, {
    sampleShape,
    classes: targetShape.reduce((a, b) => a * b, 1),
    inputName,
    seed: request.train.seed ?? 0,
  });
  // A student of the teacher's own graph (shrink:, or an ONNX file of one such as a checkpoint of
  // a detector trained on crops) runs at any height and width, as the teacher does: it trains and
  // validates at this data's size, and its checkpoints and output keep the free size.
  const freeSize = !fixed && ofTeachersGraph(request.student, loadedStudent, loaded);
  const student = freeSize ? pinSampleShape(withInputOf(loadedStudent, loaded), sampleShape) : loadedStudent;
  const released = (m: ModelProto) => (freeSize ? withInputOf(m, loaded) : m);
  // Labels only mean something for class outputs; other tasks distil from the teacher alone.
  const mode = train.y && task === 'classes' ? 'distill' : 'soft';
  const progress = progressReporter(request);
  const result = await trainStudent(student, teacher, train, validation, {
    ...request.train,
    loss: { ...request.train.loss, mode, task },
    onProgress: progress.update,
    prepareCheckpoint: released,
  });
  progress.stop();
  // Delivered with exporters' decomposed pieces fused (checkpoints stay as trained); the
  // summary counts what the written file holds (folded scales and shifts are gone).
  const delivered = fuseForInference(released(result.model)).model;
  const bytes = await saveModel(delivered, request.output);
  return {
    accuracy: result.accuracy ?? null,
    agreement: result.agreement ?? null,
    parameters: countParameters(delivered),
    bytes,
    samplesPerSecond: Math.round(result.samplesPerSecond),
    epochs: result.history.length,
    bestEpoch: result.bestEpoch,
    output: request.output,
  };
}

/** The CLI's progress bar (unless turned off), after the caller's own progress callback. */
function progressReporter(request: DistillRequest) {
  const bar =
    request.progress === false
      ? undefined
      : new SingleBar({
          format: 'epoch {epoch} |{bar}| {value}/{total} steps | loss {loss} | val acc {acc} | agree {agree}',
          hideCursor: true,
          clearOnComplete: false,
        });
  let lastEpoch = 0;
  const update = (e: ProgressEvent) => {
    request.train.onProgress?.(e);
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
  };
  return { update, stop: () => bar?.stop() };
}

async function loadValidation(request: DistillRequest, sampleShape: number[]): Promise<TrainData> {
  return (await loadTrainData(request.valData!, request.valLabels, sampleShape, request.images)).train;
}

/** Per-sample shape of the teacher's first output on one training sample. */
async function teacherOutputShape(teacher: ModelProto, train: TrainData): Promise<number[]> {
  const runner = await ModelRunner.create(teacher, 'teacher');
  try {
    const size = train.sampleShape.reduce((a, b) => a * b, 1);
    await runner.run(train.x.subarray(0, size), 1);
    return runner.lastShapes[0];
  } finally {
    await runner.release();
  }
}

/**
 * Whether `student` is the teacher's own graph: a shrunk teacher, or an ONNX file whose input has
 * the teacher's name and rank (a checkpoint or output of an earlier shrink: run).
 */
function ofTeachersGraph(spec: string, student: ModelProto, teacher: ModelProto): boolean {
  if (parseShrink(spec) !== undefined) return true;
  if (!spec.endsWith('.onnx')) return false;
  const dims = (m: ModelProto) => firstInput(m).type?.tensorType?.shape?.dim?.length;
  return firstInput(student).name === firstInput(teacher).name && dims(student) === dims(teacher);
}

function firstInput(model: ModelProto) {
  const inits = new Set((model.graph.initializer ?? []).map((t) => t.name));
  const input = (model.graph.input ?? []).find((i) => !inits.has(i.name));
  if (!input) throw new FleetError('ONNX_INVALID', 'teacher model has no input');
  return input;
}

/** The teacher's sample shape when every dimension after the batch axis is fixed. */
export function staticSampleShape(model: ModelProto): number[] | undefined {
  const dims = (firstInput(model).type?.tensorType?.shape?.dim ?? []).slice(1).map((d) => d.dimValue ?? 0);
  return dims.some((d) => !d) ? undefined : dims;
}

/** A copy of `model` whose input has the given sample shape (the batch axis stays free). */
export function pinSampleShape(model: ModelProto, sampleShape: number[]): ModelProto {
  const input = firstInput(model);
  const have = input.type?.tensorType?.shape?.dim ?? [];
  if (have.length !== sampleShape.length + 1) {
    throw new FleetError(
      'ONNX_SHAPE',
      `data samples [${sampleShape}] do not fit the teacher's input of rank ${have.length}`,
    );
  }
  have.slice(1).forEach((d, i) => {
    if (d.dimValue && d.dimValue !== sampleShape[i])
      throw new FleetError('ONNX_SHAPE', `data samples [${sampleShape}] do not fit the teacher's input`);
  });
  const dim = [have[0], ...sampleShape.map((v) => ({ dimValue: v }))];
  const pinned = { ...input, type: { tensorType: { ...input.type!.tensorType!, shape: { dim } } } };
  return {
    ...model,
    graph: { ...model.graph, input: model.graph.input!.map((i) => (i === input ? pinned : i)) },
  };
}

/** `model` with the input declaration (name, type, shape) of `like`'s first input. */
export function withInputOf(model: ModelProto, like: ModelProto): ModelProto {
  const own = firstInput(model);
  const wanted = firstInput(like);
  if (own.name !== wanted.name) return model;
  return {
    ...model,
    graph: {
      ...model.graph,
      input: model.graph.input!.map((i) => (i === own ? structuredClone(wanted) : i)),
    },
  };
}

/** The student a `--student` spec names: a shrunk teacher, a template, or an ONNX file. */
export async function loadStudent(
  spec: string,
  teacher: ModelProto,
  o: { sampleShape: number[]; classes: number; inputName: string; seed: number },
): Promise<ModelProto> {
  const width = parseShrink(spec);
  if (width !== undefined) {
    // Exporters write Constant nodes for weights and BN statistics (paddle2onnx) and opset 9–12
    // (PaddleOCR: 11, 9): shrinking needs the parameters as initializers, training opset 13.
    const source = structuredClone(teacher);
    constantsToInitializers(source);
    const student = (await shrinkModel(source, width, o.sampleShape)).model;
    upgradeOpset(student, MIN_STUDENT_OPSET);
    return student;
  }
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
