/** Throughput and correctness parts of scripts/bench/distill.ts. */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildTemplate } from '../../cloud/compression/distill/students/templates.js';
import { trainingForm } from '../../cloud/compression/distill/students/training-form.js';
import { TrainingSession } from '../../cloud/compression/distill/train-session.js';
import { buildTrainingGraph } from '../../cloud/compression/distill/training-graph.js';
import { floatInput, makeModel, makeNode } from '../../cloud/compression/onnx/build.js';
import { encodeModel } from '../../cloud/compression/onnx/proto.js';
import { tensorFloats } from '../../cloud/compression/onnx/tensor.js';
import type { ModelProto } from '../../cloud/compression/onnx/types.js';
import { createSession, ort } from '../../cloud/compression/runtime/ort.js';
import { createRng } from '../../shared/random.js';
import { cnnLogits, distillLoss, lossAfterOneStep, mlpLogits, type Params } from './distill-reference.js';

export interface SpeedResult {
  optimizer: string;
  /** Whether onnxruntime's idle threads spin (its default) or sleep (fleetml's training default). */
  spinning: boolean;
  stepsPerRun: number;
  /** Best and median over the measurement windows (the machine is shared). */
  bestSamplesPerSecond: number;
  medianSamplesPerSecond: number;
}

const B = 128;

async function session(kind: 'sgd' | 'adam', profile?: string, spinning = false) {
  const model = buildTemplate({ kind: 'mlp', hidden: [800, 800] }, { sampleShape: [1, 28, 28], classes: 10 });
  const graph = await buildTrainingGraph(trainingForm(model), {
    batch: B,
    classes: 10,
    loss: { mode: 'distill', temperature: 4, alpha: 0.9 },
    optimizer: { kind, lr: kind === 'sgd' ? 0.01 : 1e-3 },
  });
  return TrainingSession.create(graph, {
    intraOpThreads: 2,
    profileFilePrefix: profile,
    allowSpinning: spinning,
  });
}

function chunk(s: TrainingSession, K: number) {
  const rng = createRng(1);
  const x = Float32Array.from({ length: K * B * 784 }, () => rng());
  const teacherLogits = Float32Array.from({ length: K * B * 10 }, () => rng() * 4 - 2);
  const labelsOneHot = new Float32Array(K * B * 10);
  for (let i = 0; i < K * B; i++) labelsOneHot[i * 10 + (i % 10)] = 1;
  const H = s.graph.optimizer.hyperSize;
  const hyper = new Float32Array(K * H);
  for (let k = 0; k < K; k++) hyper.set(s.graph.optimizer.hyper(k, 0.01), k * H);
  return { steps: K, x, teacherLogits, labelsOneHot, hyper };
}

/** Samples per second of the 784-800-800-10 student at batch 128, K steps per run. */
export async function throughput(
  kind: 'sgd' | 'adam',
  K: number,
  spinning = false,
  windows = 7,
  stepsPerWindow = 96,
): Promise<SpeedResult> {
  const s = await session(kind, undefined, spinning);
  const c = chunk(s, K);
  for (let i = 0; i < 2; i++) await s.run(c);
  const rates: number[] = [];
  const runs = Math.max(1, Math.round(stepsPerWindow / K));
  for (let w = 0; w < windows; w++) {
    const t0 = performance.now();
    for (let r = 0; r < runs; r++) await s.run(c);
    rates.push((runs * K * B) / ((performance.now() - t0) / 1000));
  }
  await s.release();
  rates.sort((a, b) => a - b);
  return {
    optimizer: kind,
    spinning,
    stepsPerRun: K,
    bestSamplesPerSecond: rates[rates.length - 1],
    medianSamplesPerSecond: rates[Math.floor(rates.length / 2)],
  };
}

/**
 * Share of wall time per step spent outside onnxruntime kernels (Loop bookkeeping, feeding,
 * copying outputs into JavaScript), from onnxruntime's own per-kernel profile.
 */
export async function outsideKernelShare(
  K: number,
  dir: string,
): Promise<{ share: number; kernelMsPerStep: number; wallMsPerStep: number }> {
  const prefix = join(dir, `distill-profile-k${K}`);
  const s = await session('sgd', prefix);
  const c = chunk(s, K);
  const runs = Math.max(2, Math.round(64 / K));
  const t0 = performance.now();
  for (let r = 0; r < runs; r++) await s.run(c);
  const wall = performance.now() - t0;
  s.endProfiling();
  await s.release();
  const file = readdirSync(dir).find((f) => f.startsWith(`distill-profile-k${K}`) && f.endsWith('.json'))!;
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  rmSync(join(dir, file));
  // Kernels inside the Loop body appear individually; the Loop's own time contains them.
  const kernelUs = events
    .filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.args?.op_name !== 'Loop')
    .reduce((n, e) => n + e.dur, 0);
  const kernelMs = kernelUs / 1000;
  return {
    share: Math.max(0, 1 - kernelMs / wall),
    kernelMsPerStep: kernelMs / (runs * K),
    wallMsPerStep: wall / (runs * K),
  };
}

/** The same-run baseline: milliseconds of one 128x800x800 Gemm (the student's largest op). */
export async function gemmBaselineMs(): Promise<number> {
  const model = makeModel(
    [makeNode('Gemm', ['a', 'b'], ['y'])],
    [floatInput('a', [128, 800]), floatInput('b', [800, 800])],
    [floatInput('y', [128, 800])],
  );
  const s = await createSession(encodeModel(model), { intraOpThreads: 2, allowSpinning: false });
  const a = new ort.Tensor('float32', new Float32Array(128 * 800).fill(0.5), [128, 800]);
  const b = new ort.Tensor('float32', new Float32Array(800 * 800).fill(0.25), [800, 800]);
  for (let i = 0; i < 10; i++) await s.run({ a, b });
  let best = Number.POSITIVE_INFINITY;
  for (let w = 0; w < 7; w++) {
    const t0 = performance.now();
    for (let i = 0; i < 50; i++) await s.run({ a, b });
    best = Math.min(best, (performance.now() - t0) / 50);
  }
  await s.release();
  return best;
}

export interface CorrectnessRow {
  model: string;
  graphLoss: number;
  referenceLoss: number;
  relativeError: number;
}

/** Loss after one SGD step: training graph (float32, onnxruntime) vs the float64 reference. */
export async function correctness(): Promise<CorrectnessRow[]> {
  const n = 8;
  const shape = [1, 8, 8];
  const rng = createRng(9);
  const x = Float32Array.from({ length: n * 64 }, () => rng());
  const teacher = Float32Array.from({ length: n * 10 }, () => rng() * 6 - 3);
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 3) % 10);
  const setup = {
    temperature: 4,
    alpha: 0.9,
    teacherLogits: Float64Array.from(teacher),
    labels,
    classes: 10,
  };
  const lr = 0.1;
  const x64 = Float64Array.from(x);
  const cases: { name: string; model: ModelProto; logits: (p: Params) => Float64Array }[] = [
    {
      name: 'MLP 64-32-16-10',
      model: buildTemplate({ kind: 'mlp', hidden: [32, 16] }, { sampleShape: shape, classes: 10, seed: 5 }),
      logits: (p) => mlpLogits(p, x64, n, [64, 32, 16, 10]),
    },
    {
      name: 'CNN conv3-BN-ReLU-pool x2 + linear',
      model: buildTemplate({ kind: 'cnn', channels: [3, 4] }, { sampleShape: shape, classes: 10, seed: 6 }),
      logits: (p) => cnnLogits(p, x64, n, shape, [3, 4], 10),
    },
  ];
  const rows: CorrectnessRow[] = [];
  for (const c of cases) {
    const form = trainingForm(c.model);
    const graph = await buildTrainingGraph(form, {
      batch: n,
      classes: 10,
      loss: { mode: 'distill', temperature: 4, alpha: 0.9 },
      optimizer: { kind: 'sgd', momentum: 0.9 },
    });
    const s = await TrainingSession.create(graph, { intraOpThreads: 1 });
    const onehot = new Float32Array(2 * n * 10);
    for (let k = 0; k < 2; k++) for (let i = 0; i < n; i++) onehot[(k * n + i) * 10 + labels[i]] = 1;
    const twice = (a: Float32Array) => {
      const out = new Float32Array(a.length * 2);
      out.set(a);
      out.set(a, a.length);
      return out;
    };
    const hyper = Float32Array.from([...graph.optimizer.hyper(0, lr), ...graph.optimizer.hyper(1, 0)]);
    // Two steps on the same batch: the second step's loss is the loss after one update.
    const { losses } = await s.run({
      steps: 2,
      x: twice(x),
      teacherLogits: twice(teacher),
      labelsOneHot: onehot,
      hyper,
    });
    await s.release();
    const params: Params = new Map(form.params.map((t) => [t.name!, Float64Array.from(tensorFloats(t))]));
    const ref = lossAfterOneStep(params, (p) => distillLoss(c.logits(p), setup), lr);
    rows.push({
      model: c.name,
      graphLoss: losses[1],
      referenceLoss: ref.after,
      relativeError: Math.abs(losses[1] - ref.after) / Math.abs(ref.after),
    });
  }
  return rows;
}
