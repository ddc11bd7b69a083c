import { buildTemplate } from '../../../../../cloud/compression/distill/students/templates.js';
import { trainingForm } from '../../../../../cloud/compression/distill/students/training-form.js';
import { TrainingSession } from '../../../../../cloud/compression/distill/train-session.js';
import { buildTrainingGraph } from '../../../../../cloud/compression/distill/training-graph.js';

/** Batch and sample shape of the tiny training session below. */
export const TINY = { batch: 4, sample: [1, 4, 4], classes: 3 } as const;

/** A 16-8-3 MLP's training session (distillation loss, SGD with momentum, one thread). */
export async function tinyTrainingSession(): Promise<TrainingSession> {
  const model = buildTemplate(
    { kind: 'mlp', hidden: [8] },
    { sampleShape: [...TINY.sample], classes: TINY.classes, seed: 2 },
  );
  const graph = await buildTrainingGraph(trainingForm(model), {
    batch: TINY.batch,
    classes: TINY.classes,
    loss: { mode: 'distill', temperature: 2, alpha: 0.5 },
    optimizer: { kind: 'sgd', momentum: 0.9 },
  });
  return TrainingSession.create(graph, { intraOpThreads: 1 });
}
